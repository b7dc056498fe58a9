//! The registry client: OCI distribution pulls and pushes.
//!
//! * [`reference`] and [`platform`]: Docker's name normalisation and platform
//!   matching.
//! * [`manifest`]: the manifest and index formats (OCI, Docker schema 2).
//! * [`client`]: TLS, plain HTTP for loopback and insecure hosts, mirrors,
//!   authentication ([`auth`], [`credentials`]) and retries.
//! * [`pull`] and [`push`]: the operations the build engine calls, writing to
//!   and reading from a [`sink::BlobSink`].
pub mod auth;
pub mod client;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod sink;

pub use client::{parse_mirror, Client, ClientOptions};
pub use credentials::{Credential, Credentials};
pub use digest::Digest;
pub use error::{Error, Result};
pub use manifest::Descriptor;
pub use platform::Platform;
pub use progress::{BlobOutcome, Event, NoProgress, Progress};
pub use pull::{PullPolicy, PulledImage};
pub use push::PushImage;
pub use reference::Reference;
pub use sink::{BlobSink, BlobWriter, OciDir};
