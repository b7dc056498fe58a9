//! Dockerfile parsing: text to a syntax tree, the way BuildKit's parser reads it.
//!
//! Pure: no I/O. The input is the Dockerfile's bytes, the output a
//! [`Dockerfile`] or a [`ParseError`] naming the line and column.
mod ast;

pub use ast::{Args, Directive, Dockerfile, Heredoc, NameValue, Node, Span, Warning};
