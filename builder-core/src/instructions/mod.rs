//! Typed Dockerfile instructions, stages and per-stage expansion, the way
//! BuildKit's `instructions.Parse` and its dispatcher define them.
//!
//! Two steps, because expansion depends on what is only known while
//! building (the base image's `Env`, ONBUILD triggers from a base image):
//!
//! 1. [`parse_dockerfile`] (pure): syntax tree → [`Stages`], instructions
//!    typed and checked but **not expanded**, plus the global (meta) ARGs.
//! 2. [`StageState`]: one per stage while building. Created from the base
//!    image's environment, it takes the stage's [`Command`]s in order through
//!    [`StageState::apply`] and returns each with every expansion done
//!    ([`Resolved`]) plus the environment a RUN step sees.
//!
//! [`GlobalScope`] expands FROM lines (base name, `--platform`) with the
//! global ARGs only, and resolves `--target`.
mod error;
mod flags;
mod heredoc;
mod mode;
mod mount;
mod parse;
mod ports;
mod run;
mod stages;
mod state;
mod types;

pub use error::{InstructionError, InstructionErrorKind};
pub use heredoc::{chomp_heredoc, heredoc_marker, HeredocMarker};
pub use mode::{FileMode, ModeClause};
pub use mount::{parse_mount, Mount, MountType, ShareMode};
pub use parse::{parse_instruction, From, Parsed};
pub use ports::parse_ports;
pub use run::{with_shell, RunInvocation, DEFAULT_SHELL};
pub use stages::{parse_dockerfile, parse_trigger, Stage, StageRef, Stages};
pub use state::{
    BuildArgs, GlobalScope, Platform, Resolved, ResolvedFrom, StageState, DEFAULT_PATH, PROXY_ARGS,
};
pub use types::*;

#[cfg(test)]
mod tests;
