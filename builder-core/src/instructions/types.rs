//! The instruction types. Fields hold text as written (unexpanded) after
//! [`parse_dockerfile`](super::parse_dockerfile); the same types hold the
//! expanded values inside [`Resolved`](super::Resolved).
use std::time::Duration;

use crate::parser::Span;

/// A command line of RUN, CMD, ENTRYPOINT or HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// Shell form: run through the stage's SHELL, verbatim.
    Shell(String),
    /// Exec form (a JSON array): run directly.
    Exec(Vec<String>),
}

impl CommandLine {
    /// The arguments as BuildKit keeps them: the single shell string, or the
    /// exec-form array.
    pub fn args(&self) -> Vec<String> {
        match self {
            CommandLine::Shell(s) => vec![s.clone()],
            CommandLine::Exec(v) => v.clone(),
        }
    }
}

/// A heredoc body attached to RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The delimiter word.
    pub name: String,
    /// The body as written (tabs kept even for `<<-`: when the shell reads
    /// the heredoc itself, it strips them).
    pub data: String,
    /// `<<-`: leading tabs are stripped where kiln uses the body itself.
    pub chomp: bool,
    /// Whether the delimiter was unquoted (the shell expands the body).
    pub expand: bool,
}

/// A COPY/ADD source given inline as a heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    /// The file name to create (the delimiter word).
    pub path: String,
    /// The content, leading tabs removed for `<<-`.
    pub data: String,
    /// Whether variables in the content are expanded.
    pub expand: bool,
}

/// Sources and destination shared by COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourcesAndDest {
    /// Source paths or URLs, in order.
    pub sources: Vec<String>,
    /// Heredoc sources, in order.
    pub inline_sources: Vec<InlineSource>,
    /// The destination path.
    pub dest: String,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// What to copy where.
    pub paths: SourcesAndDest,
    /// `--from`: a stage name, stage index or image reference. Never
    /// expanded (BuildKit refuses variables here).
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod`, octal or symbolic (see [`FileMode`](super::FileMode)).
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns (repeatable).
    pub exclude: Vec<String>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Add {
    /// What to add where.
    pub paths: SourcesAndDest,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`; `None` when not given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum` of a remote source.
    pub checksum: Option<String>,
    /// `--unpack`; `None` when not given (archives from the context unpack,
    /// URLs do not).
    pub unpack: Option<bool>,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

/// `RUN --network` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// `default`: the builder's default (kiln: none unless allowed).
    #[default]
    Default,
    /// `none`.
    None,
    /// `host`.
    Host,
}

/// `RUN --security` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// `sandbox` (the default).
    #[default]
    Sandbox,
    /// `insecure`.
    Insecure,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command, never expanded by kiln: the shell sees it verbatim.
    pub cmd: CommandLine,
    /// Heredoc bodies, in order.
    pub files: Vec<InlineFile>,
    /// `--mount` specifications as written; expanded and typed in
    /// [`Resolved::Run`](super::Resolved::Run).
    pub mount_specs: Vec<String>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: Security,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Check {
        /// The test as stored in the image: `["CMD", args...]` for exec form,
        /// `["CMD-SHELL", command]` for shell form.
        test: Vec<String>,
        /// `--interval` (zero: not set).
        interval: Duration,
        /// `--timeout` (zero: not set).
        timeout: Duration,
        /// `--start-period` (zero: not set).
        start_period: Duration,
        /// `--start-interval` (zero: not set).
        start_interval: Duration,
        /// `--retries` (zero: not set).
        retries: u32,
    },
}

/// One ENV or LABEL pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// True for the legacy `KEY value` form.
    pub legacy: bool,
}

/// One ARG declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub key: String,
    /// The default, if any.
    pub value: Option<String>,
}

/// One instruction other than FROM (FROM starts a [`Stage`](super::Stage)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `RUN`.
    Run(Run),
    /// `CMD`. `CMD []` is an empty list in the image config, not `null`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`. An empty exec form (`ENTRYPOINT []`) means "no
    /// entrypoint" (`null` in the image config); in shell form the shell is
    /// prefixed even to an empty command, as for CMD (see
    /// [`with_shell`](super::with_shell)).
    Entrypoint(CommandLine),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Add),
    /// `ENV`.
    Env(Vec<KeyValue>),
    /// `LABEL`.
    Label(Vec<KeyValue>),
    /// `ARG`.
    Arg(Vec<ArgDecl>),
    /// `EXPOSE`, ports as written (expanded and normalised when resolved).
    Expose(Vec<String>),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `USER`.
    User(String),
    /// `WORKDIR`.
    Workdir(String),
    /// `SHELL` (JSON form only).
    Shell(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `MAINTAINER`.
    Maintainer(String),
    /// `ONBUILD`: the trigger's text, kept raw for the image config; parsed
    /// and expanded only when a later build uses this image as its base.
    OnBuild(String),
}

impl Instruction {
    /// The keyword, upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Label(_) => "LABEL",
            Instruction::Arg(_) => "ARG",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Shell(_) => "SHELL",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::OnBuild(_) => "ONBUILD",
        }
    }
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The instruction.
    pub instruction: Instruction,
    /// Its place in the Dockerfile.
    pub span: Span,
    /// Its text as written.
    pub original: String,
}
