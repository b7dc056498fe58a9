//! kiln's library: everything between a Dockerfile and an image.
//!
//! The modules follow the build pipeline and depend only on the ones before
//! them (see `docs/ARCHITECTURE.md`):
//!
//! * [`parser`]: Dockerfile text to a syntax tree (pure, no I/O).
//! * [`fsentry`]: the filesystem entry every layer producer and consumer shares.
//! * [`build`]: the build engine: stages, instructions, COPY/ADD layers, outputs.
#![deny(missing_docs)]

pub mod build;
pub mod fsentry;
pub mod parser;
