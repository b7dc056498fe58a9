//! kiln's library: everything between a Dockerfile and an image.
//!
//! The modules follow the build pipeline and depend only on the ones before
//! them (see `docs/ARCHITECTURE.md`):
//!
//! * [`parser`]: Dockerfile text to a syntax tree (pure, no I/O).
//! * [`instructions`]: typed instructions, stages, ARG/ENV scoping and
//!   expansion per stage.
//! * [`shell`]: BuildKit's word expansion (quotes, escapes, `${v...}`).
//! * [`fsentry`]: the filesystem entry every layer producer and consumer shares.
//! * [`bytename`]: file names that are not UTF-8 carried losslessly through `str` paths.
//! * [`context`]: the build context: sources, .dockerignore, safe paths, digests.
//! * [`digest`], [`reference`], [`image`], [`store`], [`layer`], [`export`]:
//!   image assembly — content digests, image names with Docker's
//!   normalisation, config/manifest types, the OCI-layout content store,
//!   reproducible layer tars with parallel compression, and the exporters.
//! * [`build`]: the build engine: stages, instructions, COPY/ADD layers, outputs.
//! * [`registry`]: pulling base images from and pushing results to OCI registries.
//! * [`sandbox`]: runs a RUN step's process in fresh namespaces (knows no Dockerfile).
//! * [`snapshot`]: layers extracted once into the store, overlay rootfs, upper-dir diff.
//! * [`progress`], [`graph`], [`cache`]: build events for renderers, the step
//!   DAG and its parallel scheduler, and the layer cache keyed by instruction hash.
#![deny(missing_docs)]

pub mod build;
pub mod bytename;
pub mod cache;
pub mod context;
pub mod digest;
pub mod export;
pub mod fsentry;
pub mod graph;
pub mod image;
pub mod instructions;
pub mod layer;
pub mod parser;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod sandbox;
pub mod shell;
pub mod snapshot;
pub mod store;
