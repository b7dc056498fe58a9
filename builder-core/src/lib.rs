//! kiln's library: everything between a Dockerfile and an image.
//!
//! The modules follow the build pipeline and depend only on the ones before
//! them (see `docs/ARCHITECTURE.md`):
//!
//! * [`parser`]: Dockerfile text to a syntax tree (pure, no I/O).
//! * [`fsentry`]: the filesystem entry every layer producer and consumer shares.
//! * [`digest`], [`image`], [`store`], [`layer`], [`export`]: image assembly —
//!   content digests, config/manifest types, the OCI-layout content store,
//!   reproducible layer tars with parallel compression, and the exporters.
#![deny(missing_docs)]

pub mod digest;
pub mod export;
pub mod fsentry;
pub mod image;
pub mod layer;
pub mod parser;
pub mod store;
