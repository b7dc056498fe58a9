//! Progress of pulls and pushes, reported through a trait: the library never
//! prints; the CLI decides how to show it.
use crate::digest::Digest;

/// What happened to one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Downloaded and verified.
    Downloaded,
    /// Already in the store: nothing fetched.
    AlreadyPresent,
    /// Uploaded to the registry.
    Uploaded,
    /// The registry already had it (HEAD).
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
}

/// One progress event.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// A tag or digest was resolved to an image manifest.
    Resolved {
        /// The reference as asked.
        reference: &'a str,
        /// The manifest's digest.
        digest: &'a Digest,
    },
    /// A blob transfer started.
    BlobStarted {
        /// The blob.
        digest: &'a Digest,
        /// Its size.
        size: u64,
    },
    /// Bytes moved so far (sent at most every MiB).
    BlobProgress {
        /// The blob.
        digest: &'a Digest,
        /// Bytes done.
        done: u64,
        /// Total size.
        total: u64,
    },
    /// A blob is done.
    BlobDone {
        /// The blob.
        digest: &'a Digest,
        /// How.
        outcome: BlobOutcome,
    },
    /// A transfer failed and is being retried or resumed.
    Retrying {
        /// The blob or manifest.
        what: &'a str,
        /// The failure.
        error: &'a str,
    },
    /// A manifest was pushed under a tag or digest.
    ManifestPushed {
        /// Where.
        reference: &'a str,
        /// Its digest.
        digest: &'a Digest,
    },
}

/// Receives progress events (from several threads at once).
pub trait Progress: Sync {
    /// Called for every event.
    fn event(&self, event: Event<'_>);
}

/// Discards events.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: Event<'_>) {}
}
