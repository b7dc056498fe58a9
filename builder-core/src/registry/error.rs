//! The registry client's error type: every variant names the reference, host,
//! digest or file it is about, so a failed pull or push says what failed.
use std::path::PathBuf;

/// Anything that can go wrong talking to a registry or reading credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that does not follow Docker's grammar.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A digest that is not `sha256:` followed by 64 lowercase hex digits.
    #[error(transparent)]
    InvalidDigest(#[from] crate::digest::DigestParseError),
    /// A platform string that is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
    /// A `--registry-mirror` value that is not `REGISTRY=HOST[:PORT]`.
    #[error("invalid registry mirror {0:?}: expected REGISTRY=HOST[:PORT]")]
    InvalidMirror(String),
    /// The registry answered with a Docker schema 1 manifest, which kiln does not read.
    #[error("{0}: the registry serves a Docker schema 1 manifest, which is deprecated and not supported; push the image again with a current client")]
    Schema1(String),
    /// A manifest or index kiln cannot read.
    #[error("{reference}: bad manifest: {reason}")]
    BadManifest {
        /// Which image.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// An index without an entry for the wanted platform.
    #[error("{reference}: no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// Which image.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the index lists.
        available: String,
    },
    /// Content whose digest or size differs from what its descriptor says; nothing was kept.
    #[error("blob {digest}: content does not match its descriptor ({reason}); nothing was stored")]
    DigestMismatch {
        /// The digest the content should have had.
        digest: String,
        /// Size or digest difference.
        reason: String,
    },
    /// A blob the sink was asked for but does not hold.
    #[error("blob {0} is not in the store")]
    BlobMissing(String),
    /// The registry answered a request with an unexpected HTTP status.
    #[error("{url}: HTTP {status}{}", detail_suffix(.detail))]
    Status {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message, if any.
        detail: String,
    },
    /// The registry refused the credentials (or there were none).
    #[error("{host}: authentication required or refused: {detail}")]
    Unauthorized {
        /// The registry host.
        host: String,
        /// Registry's error text.
        detail: String,
    },
    /// A network failure that persisted through the retries.
    #[error("{url}: {detail}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Every endpoint (mirrors and upstream) failed; each one's error is listed.
    #[error("{what}: every endpoint failed: {}", .errors.join("; "))]
    AllEndpointsFailed {
        /// What was being fetched.
        what: String,
        /// One message per endpoint tried.
        errors: Vec<String>,
    },
    /// A file (credentials, CA bundle, OCI layout) could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file or response that does not parse.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// The file or URL.
        what: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A credential helper that failed.
    #[error("credential helper docker-credential-{helper}: {detail}")]
    CredentialHelper {
        /// The helper's suffix (`pass`, `secretservice`, ...).
        helper: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// A CA file without usable certificates, or a TLS setup failure.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The content store failed (other than a digest mismatch, which is
    /// [`Error::DigestMismatch`]).
    #[error(transparent)]
    Store(crate::store::StoreError),
    /// Compressing a layer on its way out of the store failed.
    #[error("compressing a layer to push: {0}")]
    Layer(#[from] crate::layer::LayerError),
    /// An OCI layout that lacks what was asked of it.
    #[error("{path}: {reason}")]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Results of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::reference::ReferenceError> for Error {
    fn from(e: crate::reference::ReferenceError) -> Error {
        Error::InvalidReference {
            reference: e.reference,
            reason: e.reason,
        }
    }
}
