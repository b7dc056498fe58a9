//! Expansion while building: the global scope (FROM lines) and one
//! [`StageState`] per stage that tracks ENV and ARG and expands each
//! instruction exactly where BuildKit does.
use std::collections::{BTreeMap, BTreeSet};

use crate::image::platform::{is_known_arch, is_known_os, normalize};
use crate::parser::Span;
use crate::shell::{EnvLookup, Lexer, ShellError};

use super::error::{InstructionError, InstructionErrorKind as K};
use super::mode::FileMode;
use super::mount::{parse_mount, Mount};
use super::ports::parse_ports;
use super::stages::{Stage, Stages};
use super::types::*;

/// `--build-arg` values by name.
pub type BuildArgs = BTreeMap<String, String>;

/// Build args usable without an ARG declaration. They reach RUN's
/// environment only, are never written to the image and never enter a cache
/// key (BuildKit's proxy environment).
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The `PATH` a stage gets when its base image sets none (BuildKit's
/// default for Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An OCI platform (`os/arch[/variant]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`, ...
    pub architecture: String,
    /// `v7`, ... or empty.
    pub variant: String,
}

impl Platform {
    /// The machine kiln runs on, named as Go/OCI name it.
    pub fn host() -> Platform {
        let h = crate::image::Platform::host();
        let (os, architecture, variant) =
            normalize(&h.os, &h.architecture, h.variant.as_deref().unwrap_or(""));
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// Parses and normalises `os[/arch[/variant]]` the way containerd's
    /// `platforms.Parse` does for the common spellings.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let bad = || format!("{s:?}: unknown operating system or architecture: invalid argument");
        let parts: Vec<&str> = s.split('/').collect();
        let host = Platform::host();
        let (os, arch, variant) = match parts.as_slice() {
            [one] if is_known_os(&normalize(one, "", "").0) => {
                normalize(one, &host.architecture, &host.variant)
            }
            [one] if is_known_arch(&normalize("", one, "").1) => normalize(&host.os, one, ""),
            [os, arch] => normalize(os, arch, ""),
            [os, arch, variant] => normalize(os, arch, variant),
            _ => return Err(bad()),
        };
        if !is_known_os(&os) || !is_known_arch(&arch) {
            return Err(bad());
        }
        Ok(Platform {
            os,
            architecture: arch,
            variant,
        })
    }

    /// `os/arch` or `os/arch/variant`.
    pub fn format(&self) -> String {
        if self.variant.is_empty() {
            format!("{}/{}", self.os, self.architecture)
        } else {
            format!("{}/{}/{}", self.os, self.architecture, self.variant)
        }
    }
}

/// An ordered `KEY=value` list where setting a key replaces it in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct EnvList(Vec<(String, String)>);

impl EnvList {
    fn set(&mut self, k: &str, v: &str) {
        match self.0.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => self.0.push((k.to_string(), v.to_string())),
        }
    }
}

impl EnvLookup for EnvList {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn expansion_error(span: Span, original: &str) -> impl Fn(ShellError) -> InstructionError + '_ {
    move |e| InstructionError::new(span, original, K::Expansion(e))
}

/// A FROM line with its base and platform expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFrom {
    /// The base image reference or stage name, expanded.
    pub base: String,
    /// `--platform`, expanded and parsed.
    pub platform: Option<Platform>,
    /// Global ARGs the line referred to.
    pub used_args: BTreeSet<String>,
}

/// The global ARG scope: platform ARGs, ARGs before the first FROM, build
/// args. FROM lines expand against it; stages copy from it.
#[derive(Debug, Clone)]
pub struct GlobalScope {
    lexer: Lexer,
    args: EnvList,
    build_args: BuildArgs,
}

impl GlobalScope {
    /// The global scope of `stages` for this build.
    ///
    /// `target_platform` defaults to `build_platform`; `target` is the
    /// `--target` stage name (it sets `TARGETSTAGE`).
    pub fn new(
        stages: &Stages,
        build_args: &BuildArgs,
        build_platform: &Platform,
        target_platform: Option<&Platform>,
        target: Option<&str>,
    ) -> Result<GlobalScope, InstructionError> {
        let tp = target_platform.unwrap_or(build_platform);
        let target_name = target
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .or_else(|| stages.stages.last().and_then(|s| s.from.name.clone()))
            .unwrap_or_else(|| "default".into());
        let mut args = EnvList::default();
        for (k, v) in [
            ("BUILDPLATFORM", build_platform.format()),
            ("BUILDOS", build_platform.os.clone()),
            ("BUILDOSVERSION", String::new()),
            ("BUILDARCH", build_platform.architecture.clone()),
            ("BUILDVARIANT", build_platform.variant.clone()),
            ("TARGETPLATFORM", tp.format()),
            ("TARGETOS", tp.os.clone()),
            ("TARGETOSVERSION", String::new()),
            ("TARGETARCH", tp.architecture.clone()),
            ("TARGETVARIANT", tp.variant.clone()),
            ("TARGETSTAGE", target_name),
        ] {
            let v = build_args.get(k).cloned().unwrap_or(v);
            args.set(k, &v);
        }
        let lexer = Lexer::new(stages.escape);
        for cmd in &stages.meta_args {
            let Instruction::Arg(decls) = &cmd.instruction else {
                continue;
            };
            for d in decls {
                let value = match (build_args.get(&d.key), &d.value) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => Some(
                        lexer
                            .process_word(default, &args)
                            .map_err(expansion_error(cmd.span, &cmd.original))?,
                    ),
                    (None, None) => None,
                };
                if let Some(v) = value {
                    args.set(&d.key, &v);
                }
            }
        }
        Ok(GlobalScope {
            lexer,
            args,
            build_args: build_args.clone(),
        })
    }

    /// The global ARG values, in definition order.
    pub fn args(&self) -> &[(String, String)] {
        &self.args.0
    }

    /// Expands a stage's FROM line with the global ARGs only.
    pub fn resolve_from(&self, stage: &Stage) -> Result<ResolvedFrom, InstructionError> {
        let err = expansion_error(stage.span, &stage.original);
        let base = self
            .lexer
            .process_word_with_matches(&stage.from.base, &self.args)
            .map_err(&err)?;
        let fail = |k: K| InstructionError::new(stage.span, &stage.original, k);
        if base.word.is_empty() {
            return Err(fail(K::BadValue(format!(
                "base name ({}) should not be blank",
                stage.from.base
            ))));
        }
        let mut used = base.matched;
        let platform =
            match &stage.from.platform {
                None => None,
                Some(p) => {
                    let r = self
                        .lexer
                        .process_word_with_matches(p, &self.args)
                        .map_err(&err)?;
                    if r.word.is_empty() {
                        return Err(fail(K::BadValue(format!(
                            "empty platform value from expression {p}"
                        ))));
                    }
                    used.extend(r.matched);
                    Some(Platform::parse(&r.word).map_err(|e| {
                        fail(K::BadValue(format!("failed to parse platform {p}: {e}")))
                    })?)
                }
            };
        Ok(ResolvedFrom {
            base: base.word,
            platform,
            used_args: used,
        })
    }

    /// The proxy variables for RUN, from build args named like
    /// [`PROXY_ARGS`] in any case. As BuildKit does: when several spellings
    /// are given the one sorting last wins, an empty value sets nothing, and
    /// each set proxy is exported in both upper and lower case, in the order
    /// HTTP, HTTPS, FTP, NO, ALL. Append these after the step's environment.
    pub fn proxy_env(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for upper in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "FTP_PROXY",
            "NO_PROXY",
            "ALL_PROXY",
        ] {
            // BTreeMap iterates in sorted order: the last match is BuildKit's pick.
            let value = self
                .build_args
                .iter()
                .rev()
                .find(|(k, _)| k.eq_ignore_ascii_case(upper))
                .map(|(_, v)| v);
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.push((upper.to_string(), v.clone()));
                out.push((upper.to_ascii_lowercase(), v.clone()));
            }
        }
        out
    }
}

/// One instruction after expansion, with what a build step needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The instruction with every BuildKit expansion done: ENV/LABEL keys
    /// and values, ARG values, COPY/ADD paths, chown, chmod, checksum and
    /// expandable heredoc sources, WORKDIR (made absolute), USER, VOLUME,
    /// STOPSIGNAL, EXPOSE (normalised to `port/proto`). RUN, CMD,
    /// ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD are as written.
    pub instruction: Instruction,
    /// RUN's `--mount`s, expanded and typed (empty for other instructions).
    pub mounts: Vec<Mount>,
    /// The environment after this instruction: base image env, ARG values
    /// and ENV, in order. This is what a RUN step sees.
    pub env: Vec<(String, String)>,
    /// Proxy variables for RUN: add to the process environment only; never
    /// persist them and keep them out of cache keys.
    pub proxy_env: Vec<(String, String)>,
}

/// The expansion state of one stage while it is built.
#[derive(Debug, Clone)]
pub struct StageState {
    lexer: Lexer,
    /// What expansion and RUN see: base env, ARGs and ENVs.
    env: EnvList,
    /// What goes into the image config's `Env`: base env and ENVs.
    config_env: EnvList,
    workdir: String,
    declared_args: Vec<(String, Option<String>)>,
    global_args: EnvList,
    build_args: BuildArgs,
    proxy_env: Vec<(String, String)>,
    used_build_args: BTreeSet<String>,
}

impl StageState {
    /// A stage on a base image whose config has `base_env` and `base_workdir`
    /// (empty means `/`). Without a `PATH` in `base_env` the stage gets
    /// [`DEFAULT_PATH`], in the image config too (BuildKit does the same,
    /// `FROM scratch` included).
    pub fn new(global: &GlobalScope, base_env: Vec<(String, String)>, base_workdir: &str) -> Self {
        let mut env = EnvList::default();
        for (k, v) in &base_env {
            env.set(k, v);
        }
        if env.lookup("PATH").is_none() {
            env.set("PATH", DEFAULT_PATH);
        }
        StageState {
            lexer: global.lexer,
            config_env: env.clone(),
            env,
            workdir: if base_workdir.is_empty() {
                "/".into()
            } else {
                base_workdir.to_string()
            },
            declared_args: Vec::new(),
            global_args: global.args.clone(),
            build_args: global.build_args.clone(),
            proxy_env: global.proxy_env(),
            used_build_args: BTreeSet::new(),
        }
    }

    /// A stage built `FROM` an earlier stage: it inherits that stage's
    /// environment, including its ARG values, as BuildKit's state does.
    pub fn from_parent(parent: &StageState) -> Self {
        let mut s = parent.clone();
        s.used_build_args.clear();
        s
    }

    /// The environment expansion and RUN currently see.
    pub fn env(&self) -> &[(String, String)] {
        &self.env.0
    }

    /// The environment to write into the image config.
    pub fn config_env(&self) -> &[(String, String)] {
        &self.config_env.0
    }

    /// The current working directory (absolute).
    pub fn workdir(&self) -> &str {
        &self.workdir
    }

    /// ARGs declared in this stage so far, with their values.
    pub fn declared_args(&self) -> &[(String, Option<String>)] {
        &self.declared_args
    }

    /// Build args this stage consumed (to warn about unused ones).
    pub fn used_build_args(&self) -> &BTreeSet<String> {
        &self.used_build_args
    }

    /// Expands one word with the current environment.
    pub fn expand(&self, word: &str) -> Result<String, ShellError> {
        self.lexer.process_word(word, &self.env)
    }

    /// Applies one instruction: expands it where BuildKit would, updates
    /// ENV/ARG/WORKDIR state and returns the result.
    pub fn apply(&mut self, cmd: &Command) -> Result<Resolved, InstructionError> {
        let fail = |k: K| InstructionError::new(cmd.span, &cmd.original, k);
        let mut mounts = Vec::new();
        let instruction = self
            .expand_instruction(&cmd.instruction, &mut mounts)
            .map_err(fail)?;
        Ok(Resolved {
            instruction,
            mounts,
            env: self.env.0.clone(),
            proxy_env: self.proxy_env.clone(),
        })
    }

    fn word(&self, w: &str) -> Result<String, K> {
        self.expand(w).map_err(K::Expansion)
    }

    /// An optional flag value; empty after expansion means not given, as
    /// BuildKit treats `--chown=$UNSET`.
    fn opt(&self, w: &Option<String>) -> Result<Option<String>, K> {
        Ok(w.as_deref()
            .map(|w| self.word(w))
            .transpose()?
            .filter(|v| !v.is_empty()))
    }

    fn paths(&self, p: &SourcesAndDest) -> Result<SourcesAndDest, K> {
        let mut heredoc_lexer = Lexer::new('\\');
        heredoc_lexer.skip_process_quotes = true;
        Ok(SourcesAndDest {
            sources: p
                .sources
                .iter()
                .map(|s| self.word(s))
                .collect::<Result<_, _>>()?,
            inline_sources: p
                .inline_sources
                .iter()
                .map(|s| {
                    let data = if s.expand {
                        heredoc_lexer.process_word(&s.data, &self.env)?
                    } else {
                        s.data.clone()
                    };
                    Ok(InlineSource { data, ..s.clone() })
                })
                .collect::<Result<_, ShellError>>()?,
            dest: self.word(&p.dest)?,
        })
    }

    fn chmod(&self, c: &Option<String>) -> Result<Option<String>, K> {
        let c = self.opt(c)?;
        if let Some(m) = c.as_deref() {
            FileMode::parse(m)?;
        }
        Ok(c)
    }

    fn expand_instruction(
        &mut self,
        ins: &Instruction,
        mounts: &mut Vec<Mount>,
    ) -> Result<Instruction, K> {
        Ok(match ins {
            Instruction::Env(kvs) => {
                // Every value sees the environment from before the line.
                let kvs = self.kvs(kvs)?;
                for kv in &kvs {
                    self.env.set(&kv.key, &kv.value);
                    self.config_env.set(&kv.key, &kv.value);
                }
                Instruction::Env(kvs)
            }
            Instruction::Label(kvs) => Instruction::Label(self.kvs(kvs)?),
            Instruction::Arg(decls) => Instruction::Arg(self.args(decls)?),
            Instruction::Copy(c) => Instruction::Copy(Copy {
                paths: self.paths(&c.paths)?,
                chown: self.opt(&c.chown)?,
                chmod: self.chmod(&c.chmod)?,
                ..c.clone()
            }),
            Instruction::Add(a) => Instruction::Add(Add {
                paths: self.paths(&a.paths)?,
                chown: self.opt(&a.chown)?,
                chmod: self.chmod(&a.chmod)?,
                checksum: self.opt(&a.checksum)?,
                ..a.clone()
            }),
            Instruction::Workdir(p) => {
                let p = self.word(p)?;
                self.workdir = normalize_workdir(&self.workdir, &p)?;
                Instruction::Workdir(self.workdir.clone())
            }
            Instruction::User(u) => Instruction::User(self.word(u)?),
            Instruction::Volume(v) => {
                let mut out = Vec::new();
                for x in v {
                    let x = self.word(x)?;
                    if x.is_empty() {
                        return Err(K::BadArguments(
                            "VOLUME specified can not be an empty string".into(),
                        ));
                    }
                    out.push(x);
                }
                Instruction::Volume(out)
            }
            Instruction::StopSignal(s) => {
                let s = self.word(s)?;
                check_signal(&s)?;
                Instruction::StopSignal(s)
            }
            Instruction::Expose(ports) => {
                let mut words = Vec::new();
                for p in ports {
                    words.extend(self.lexer.process_words(p, &self.env)?);
                }
                Instruction::Expose(parse_ports(&words)?)
            }
            Instruction::Run(r) => {
                for spec in &r.mount_specs {
                    mounts.push(parse_mount(spec, &mut |v| self.word(v))?);
                }
                Instruction::Run(r.clone())
            }
            other => other.clone(),
        })
    }

    fn kvs(&self, kvs: &[KeyValue]) -> Result<Vec<KeyValue>, K> {
        kvs.iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: self.word(&kv.key)?,
                    value: self.word(&kv.value)?,
                    legacy: kv.legacy,
                })
            })
            .collect()
    }

    /// BuildKit's `dispatchArg`: a build arg wins, else the default
    /// (expanded), else the global value when the ARG has no default.
    ///
    /// Names are expanded too (`ARG ${name}=v`), all of them with the
    /// environment from before the line, as docker 20.10's `ArgCommand`
    /// `Expand` does before dispatching; BuildKit stopped expanding them in
    /// 2024 (47a52a17b) as a side effect of deferring the defaults.
    fn args(&mut self, decls: &[ArgDecl]) -> Result<Vec<ArgDecl>, K> {
        let keys = decls
            .iter()
            .map(|d| self.word(&d.key))
            .collect::<Result<Vec<_>, K>>()?;
        let mut out = Vec::new();
        for (d, key) in decls.iter().zip(keys) {
            let build = self.build_args.get(&key).cloned();
            let value = match (&build, &d.value) {
                (Some(v), _) => {
                    self.used_build_args.insert(key.clone());
                    Some(v.clone())
                }
                (None, Some(default)) => Some(self.word(default)?),
                (None, None) => self.global_args.lookup(&key).map(str::to_string),
            };
            if let Some(v) = &value {
                self.env.set(&key, v);
            }
            self.declared_args.push((key.clone(), value.clone()));
            out.push(ArgDecl { key, value });
        }
        Ok(out)
    }
}

/// Docker's `NormalizeWorkdir` on Linux: a relative path is joined onto the
/// current directory and cleaned; an absolute one is kept as written.
fn normalize_workdir(current: &str, requested: &str) -> Result<String, K> {
    if requested.is_empty() {
        return Err(K::BadValue(
            "normalizing workdir: cannot normalize nothing".into(),
        ));
    }
    if requested.starts_with('/') {
        // An absolute path is kept as written ("/tmp/" stays "/tmp/"),
        // as BuildKit records it in the config.
        return Ok(requested.to_string());
    }
    let joined = format!("/{current}/{requested}");
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// moby's `signal.ParseSignal` for Linux.
fn check_signal(s: &str) -> Result<(), K> {
    let invalid = || K::BadValue(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i64>() {
        return if n == 0 { Err(invalid()) } else { Ok(()) };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    const NAMES: [&str; 33] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
    ];
    let rt = |prefix: &str, sign: char| {
        name.strip_prefix(prefix).is_some_and(|rest| {
            rest.is_empty()
                || rest
                    .strip_prefix(sign)
                    .and_then(|n| n.parse::<u8>().ok())
                    .is_some_and(|n| (1..=15).contains(&n))
        })
    };
    if NAMES.contains(&name) || name == "XFSZ" || rt("RTMIN", '+') || rt("RTMAX", '-') {
        Ok(())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().format(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().format(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("Linux/aarch64").unwrap().format(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().format(),
            "linux/amd64"
        );
        assert_eq!(Platform::parse("linux/arm/v6").unwrap().variant, "v6");
        assert!(Platform::parse("linux").is_ok());
        assert!(Platform::parse("nope/amd64").is_err());
        assert!(Platform::parse("linux/amd64/v2/x").is_err());
        assert!(Platform::parse("linux/pdp11").is_err());
    }

    #[test]
    fn workdirs() {
        assert_eq!(normalize_workdir("/", "app").unwrap(), "/app");
        assert_eq!(normalize_workdir("/app", "../srv/./x/").unwrap(), "/srv/x");
        assert_eq!(normalize_workdir("/app", "/abs").unwrap(), "/abs");
        assert_eq!(normalize_workdir("/app", "/tmp/").unwrap(), "/tmp/");
        assert!(normalize_workdir("/", "").is_err());
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-15", "sigrtmin"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "SIGFOO", "RTMIN+16", ""] {
            assert!(check_signal(bad).is_err(), "{bad}");
        }
    }
}
