//! Shared helpers for kiln's benchmarks.
