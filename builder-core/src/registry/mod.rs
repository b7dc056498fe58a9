//! The registry client: OCI distribution pulls and pushes.
//!
//! * [`reference`] and [`platform`]: Docker's name normalisation and platform
//!   matching.
//! * [`manifest`]: what a registry serves (OCI, Docker schema 2), parsed into
//!   the [`crate::image`] types; schema 1 refused; index entries by platform.
//! * [`client`]: TLS, plain HTTP for loopback and insecure hosts, mirrors,
//!   authentication ([`auth`], [`credentials`]) and retries.
//! * [`pull`] and [`push`]: pulls into and pushes from a [`sink::BlobSink`]
//!   (the content store implements it, as does [`OciDir`]).
//! * [`pull_into_store`] and [`push_from_store`]: what the build engine and
//!   `kiln push` call, with the content store and its names.
pub mod auth;
pub mod client;
pub mod credentials;
pub mod error;
pub mod manifest;
mod parallel;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
/// Image references (shared with the store).
pub use crate::reference;
pub mod sink;
mod store_ops;
mod store_sink;
mod tls;

pub use crate::digest::Digest;
pub use crate::image::Descriptor;
pub use client::{parse_mirror, Client, ClientOptions};
pub use credentials::{Credential, Credentials};
pub use error::{Error, Result};
pub use platform::Platform;
pub use progress::{BlobOutcome, Event, NoProgress, Progress};
pub use pull::{PullPolicy, PulledImage, ServedIndex};
pub use push::PushImage;
pub use reference::Reference;
pub use sink::{BlobSink, BlobWriter, OciDir};
pub use store_ops::{pull_into_store, push_from_store, StoredPull};
