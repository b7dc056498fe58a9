//! Cache keys: a sha256 over a canonical encoding of every named input of a
//! step. Inputs are kept by name in an [`InputsRecord`] beside the key, so a
//! later miss can say which one changed.
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestParseError, Hasher};

/// Mixed into every key: changing the encoding changes every key. Bumped
/// too whenever the same inputs make a different result (a semantics
/// fix), so a cache made by an older kiln is not served as the new one's:
/// v2 with COPY/ADD ownership, `--parents`/`--exclude` and archive owners
/// following BuildKit more closely; v3 with the fifth session's: `COPY
/// --from` keeping a stage's hard links; RUN steps keeping the /dev, /proc
/// and /sys they made, a missing cwd made as the step's user, sockets
/// skipped; ADD of a tar keeping PAX mtimes, `security.capability` and hard
/// links, symlinks 0777, and expanding PAX sparse files; COPY leaving fifos
/// out and writing device nodes as empty files; an octal `--chmod` keeping
/// the source's special bits; whiteouts sorting at the name they delete;
/// rootless layers keeping file capabilities as plain v2 values; v4 with
/// the sixth session's: hard links kept only within one COPY source, ADD
/// of a zstd archive copied as a file; v5 with names that are not UTF-8
/// kept byte for byte by `COPY --from` and ADD of an archive (they had
/// become U+FFFD under the same keys).
const DOMAIN: &[u8] = b"kiln.build-cache.v5\0";

/// Build args that never enter a key (BuildKit's predefined proxy args):
/// a CI runner behind a proxy shares a cache with one that is not.
pub use crate::instructions::PROXY_ARGS;

/// A step's cache key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CacheKey(Digest);

impl CacheKey {
    /// The key as a digest.
    pub fn digest(&self) -> &Digest {
        &self.0
    }

    /// The 64 hex digits (file names in the index).
    pub fn hex(&self) -> &str {
        self.0.hex()
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.0)
    }
}

impl FromStr for CacheKey {
    type Err = DigestParseError;
    fn from_str(s: &str) -> Result<CacheKey, DigestParseError> {
        s.parse().map(CacheKey)
    }
}

/// Every input of one step, by name, as it went into the key.
///
/// Names use prefixes the explanation understands: `parent`, `base`,
/// `instruction`, `platform`, `env:NAME`, `arg:NAME`, `file:PATH`,
/// `from:NAME`, `chown:SPEC`, `config:FIELD`, `mount:TARGET`; any other name
/// is shown as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputsRecord {
    /// The step's kind (`RUN`, `COPY`, …), part of the key.
    pub kind: String,
    /// How to show the step (the instruction as written); not in the key.
    #[serde(default)]
    pub label: String,
    /// Name → value of every input in the key.
    pub inputs: BTreeMap<String, String>,
    /// Finer-grained listings behind summary inputs (e.g. each file under
    /// `file:.`), used only to explain a miss; the summary value must
    /// already cover them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, BTreeMap<String, String>>,
}

impl InputsRecord {
    /// The key these inputs hash to.
    pub fn key(&self) -> CacheKey {
        let mut h = Hasher::new();
        h.update(DOMAIN);
        field(&mut h, self.kind.as_bytes());
        for (name, value) in &self.inputs {
            field(&mut h, name.as_bytes());
            field(&mut h, value.as_bytes());
        }
        CacheKey(h.finish())
    }
}

/// Length-prefixed, so no choice of names and values can collide.
fn field(h: &mut Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Collects a step's inputs and computes its key.
///
/// ```
/// use builder_core::cache::KeyBuilder;
/// let (base, _) = KeyBuilder::new("FROM").base("sha256:abc").build();
/// let (key, record) = KeyBuilder::new("COPY")
///     .label("COPY . /app")
///     .parent(&base)
///     .instruction("COPY . /app")
///     .file("src/main.rs", "sha256:0123")
///     .build();
/// assert_eq!(record.key(), key);
/// ```
#[derive(Clone, Debug)]
pub struct KeyBuilder {
    record: InputsRecord,
    excluded: Vec<String>,
}

impl KeyBuilder {
    /// Starts a key for a step of `kind`.
    pub fn new(kind: &str) -> KeyBuilder {
        KeyBuilder {
            record: InputsRecord {
                kind: kind.to_string(),
                ..InputsRecord::default()
            },
            excluded: PROXY_ARGS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Sets how the step is shown in explanations (not part of the key).
    pub fn label(mut self, text: impl Into<String>) -> KeyBuilder {
        self.record.label = text.into();
        self
    }

    /// Adds (or replaces) an input.
    pub fn input(mut self, name: impl Into<String>, value: impl Into<String>) -> KeyBuilder {
        self.record.inputs.insert(name.into(), value.into());
        self
    }

    /// The previous layer step's key (or the stage's base key).
    pub fn parent(self, key: &CacheKey) -> KeyBuilder {
        self.input("parent", key.to_string())
    }

    /// The base image's manifest digest (`scratch` for none).
    pub fn base(self, manifest_digest: impl Into<String>) -> KeyBuilder {
        self.input("base", manifest_digest)
    }

    /// The instruction in canonical form (expanded, flags normalised).
    pub fn instruction(self, text: impl Into<String>) -> KeyBuilder {
        self.input("instruction", text)
    }

    /// An environment variable the step sees.
    pub fn env(self, name: &str, value: impl Into<String>) -> KeyBuilder {
        self.input(format!("env:{name}"), value)
    }

    /// A build arg the step sees.
    pub fn build_arg(self, name: &str, value: impl Into<String>) -> KeyBuilder {
        self.input(format!("arg:{name}"), value)
    }

    /// The content digest of something the step reads, by path.
    pub fn file(self, path: &str, digest: impl Into<String>) -> KeyBuilder {
        self.input(format!("file:{path}"), digest)
    }

    /// A `--from` source: a stage's final key or an image's digest.
    pub fn from_source(self, name: &str, key_or_digest: impl Into<String>) -> KeyBuilder {
        self.input(format!("from:{name}"), key_or_digest)
    }

    /// A config field that changes what the step does (`WORKDIR`, `USER`,
    /// `SHELL`, …).
    pub fn config(self, field: &str, value: impl Into<String>) -> KeyBuilder {
        self.input(format!("config:{field}"), value)
    }

    /// The per-entry listing behind summary input `name` (for example each
    /// file's digest under a `file:.` directory digest), kept to explain a
    /// miss file by file. The listing's names should be input names
    /// themselves (`file:src/main.rs`).
    pub fn detail(mut self, name: &str, listing: BTreeMap<String, String>) -> KeyBuilder {
        self.record.details.insert(name.to_string(), listing);
        self
    }

    /// Keeps `env:NAME`/`arg:NAME` inputs for these names out of the key
    /// (secrets, extra proxy variables); [`PROXY_ARGS`] always are.
    pub fn exclude<S: AsRef<str>>(mut self, names: &[S]) -> KeyBuilder {
        self.excluded
            .extend(names.iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// The key and the record of what went into it.
    pub fn build(mut self) -> (CacheKey, InputsRecord) {
        let excluded = &self.excluded;
        self.record.inputs.retain(|name, _| {
            let var = name
                .strip_prefix("env:")
                .or_else(|| name.strip_prefix("arg:"));
            !var.is_some_and(|v| excluded.iter().any(|e| e == v))
        });
        (self.record.key(), self.record)
    }
}
