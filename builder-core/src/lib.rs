//! kiln's library: everything between a Dockerfile and an image.
//!
//! The modules follow the build pipeline and depend only on the ones before
//! them (see `docs/ARCHITECTURE.md`):
//!
//! * [`parser`]: Dockerfile text to a syntax tree (pure, no I/O).
//! * [`fsentry`]: the filesystem entry every layer producer and consumer shares.
//! * [`registry`]: pulling base images from and pushing results to OCI registries.
#![deny(missing_docs)]

pub mod fsentry;
pub mod parser;
pub mod registry;
