//! kiln's library: everything between a Dockerfile and an image.
//!
//! The modules follow the build pipeline and depend only on the ones before
//! them (see `docs/ARCHITECTURE.md`):
//!
//! * [`parser`]: Dockerfile text to a syntax tree (pure, no I/O).
//! * [`fsentry`]: the filesystem entry every layer producer and consumer shares.
//! * [`sandbox`]: runs a RUN step's process in fresh namespaces (knows no Dockerfile).
//! * [`snapshot`]: layers extracted once into the store, overlay rootfs, upper-dir diff.
#![deny(missing_docs)]

pub mod fsentry;
pub mod parser;
pub mod sandbox;
pub mod snapshot;
