//! A whole Dockerfile to stages (BuildKit's `instructions.Parse`), plus
//! stage lookup by name or index and `--target` resolution.
use crate::parser::{Dockerfile, Span};
use crate::shell::{EmptyEnv, Lexer};

use super::error::{InstructionError, InstructionErrorKind as K};
use super::parse::{parse_instruction, From, Parsed};
use super::types::{Command, Instruction};

/// One build stage: a FROM line and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The stage's position (0-based), usable as `--from=<index>`.
    pub index: usize,
    /// The FROM line, unexpanded.
    pub from: From,
    /// Where the FROM line is.
    pub span: Span,
    /// The FROM line as written.
    pub original: String,
    /// The instructions of the stage, in order, unexpanded.
    pub commands: Vec<Command>,
}

impl Stage {
    /// The `AS` name (lower case), if any.
    pub fn name(&self) -> Option<&str> {
        self.from.name.as_deref()
    }
}

/// A parsed Dockerfile: global ARGs and stages, nothing expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// The escape character the file uses (for expanding its words).
    pub escape: char,
    /// The ARG instructions before the first FROM (each an
    /// [`Instruction::Arg`]).
    pub meta_args: Vec<Command>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// Turns a parsed Dockerfile into stages with typed, unexpanded
/// instructions. Checks every instruction's flags and arguments; an ARG is
/// the only instruction allowed before the first FROM.
pub fn parse_dockerfile(df: &Dockerfile) -> Result<Stages, InstructionError> {
    let mut out = Stages {
        escape: df.escape,
        meta_args: Vec::new(),
        stages: Vec::new(),
    };
    let lexer = Lexer::new(df.escape);
    for node in &df.nodes {
        let err = |k: K| InstructionError::new(node.span, &node.original, k);
        match parse_instruction(node)? {
            Parsed::From(from) => out.stages.push(Stage {
                index: out.stages.len(),
                from,
                span: node.span,
                original: node.original.trim().to_string(),
                commands: Vec::new(),
            }),
            Parsed::Command(cmd) => {
                if let Instruction::Copy(c) = &cmd.instruction {
                    // BuildKit refuses variables in --from before building.
                    if let Some(from) = &c.from {
                        let same = lexer
                            .process_word(from, &EmptyEnv)
                            .map_err(|e| err(K::Expansion(e)))?;
                        if &same != from {
                            return Err(err(K::Stage(
                                "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
                                    .into(),
                            )));
                        }
                    }
                }
                match out.stages.last_mut() {
                    Some(stage) => stage.commands.push(cmd),
                    None if matches!(cmd.instruction, Instruction::Arg(_)) => {
                        out.meta_args.push(cmd)
                    }
                    None => return Err(err(K::Stage("no build stage in current context".into()))),
                }
            }
        }
    }
    if out.stages.is_empty() {
        return Err(InstructionError::new(
            Span::default(),
            "",
            K::Stage("dockerfile contains no stages to build".into()),
        ));
    }
    Ok(out)
}

/// What a stage reference (`FROM x`, `COPY --from=x`, `--mount from=x`)
/// points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    /// An earlier stage, by index.
    Stage(usize),
    /// Not a stage: an image reference.
    Image(String),
}

impl Stages {
    /// The index of the stage named `name` (case-insensitive); a later
    /// stage of the same name wins, as in BuildKit.
    pub fn stage_by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .rev()
            .find(|s| s.name() == Some(lower.as_str()))
            .map(|s| s.index)
    }

    /// Resolves an expanded FROM base for the stage at `current`: an earlier
    /// stage's exact (lower-case) name, else an image.
    pub fn resolve_base(&self, base: &str, current: usize) -> StageRef {
        self.stages
            .iter()
            .take(current)
            .rev()
            .find(|s| s.name() == Some(base))
            .map_or_else(
                || StageRef::Image(base.to_string()),
                |s| StageRef::Stage(s.index),
            )
    }

    /// Resolves `COPY --from` / `--mount from=`: a number is a stage index
    /// (an error when out of range), a stage name (any case) a stage, and
    /// anything else an image.
    pub fn resolve_from(&self, reference: &str) -> Result<StageRef, K> {
        if let Ok(i) = reference.parse::<i64>() {
            return usize::try_from(i)
                .ok()
                .filter(|i| *i < self.stages.len())
                .map(StageRef::Stage)
                .ok_or_else(|| K::Stage(format!("invalid stage index {i}")));
        }
        Ok(self
            .stage_by_name(reference)
            .map_or_else(|| StageRef::Image(reference.to_string()), StageRef::Stage))
    }

    /// The stage `--target` selects: the named one, or the last stage.
    pub fn target(&self, target: Option<&str>) -> Result<usize, InstructionError> {
        match target.filter(|t| !t.is_empty()) {
            None => Ok(self.stages.len().saturating_sub(1)),
            Some(t) => self.stage_by_name(t).ok_or_else(|| {
                InstructionError::new(Span::default(), "", K::UnknownTarget(t.to_string()))
            }),
        }
    }
}
