//! One syntax-tree node to one typed instruction (BuildKit's
//! `ParseInstruction`): flags checked, argument counts checked, nothing
//! expanded.
use std::time::Duration;

use crate::parser::{Args, Node};

use super::error::{InstructionError, InstructionErrorKind as K};
use super::flags::{FlagType as T, Flags};
use super::heredoc::{chomp_heredoc, heredoc_marker};
use super::mount::precheck_mount;
use super::types::*;

/// A FROM line: the start of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base: image reference or earlier stage name, unexpanded.
    pub base: String,
    /// `AS name`, lower-cased and validated.
    pub name: Option<String>,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
}

/// What one node parses to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// FROM.
    From(From),
    /// Any other instruction.
    Command(Command),
}

fn words(node: &Node) -> Vec<String> {
    match &node.args {
        Args::Words(w) => w.clone(),
        Args::NameValues(nv) => nv.iter().map(|p| p.key.clone()).collect(),
        Args::Nested(n) => vec![n.keyword.clone()],
    }
}

fn at_least_one(cmd: &str) -> K {
    K::BadArguments(format!("{cmd} requires at least one argument"))
}

fn exactly_one(cmd: &str) -> K {
    K::BadArguments(format!("{cmd} requires exactly one argument"))
}

/// BuildKit's `handleJSONArgs`: exec form keeps the array; shell form is
/// one string (the words joined by a space).
fn command_line(node: &Node, args: &[String]) -> CommandLine {
    if node.json {
        CommandLine::Exec(args.to_vec())
    } else {
        CommandLine::Shell(args.join(" "))
    }
}

/// BuildKit's stage-name rule.
fn valid_stage_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Parses one instruction node.
pub fn parse_instruction(node: &Node) -> Result<Parsed, InstructionError> {
    parse_kind(node).map_err(|k| InstructionError::new(node.span, &node.original, k))
}

fn parse_kind(node: &Node) -> Result<Parsed, K> {
    let keyword = node.keyword.to_ascii_lowercase();
    let args = words(node);
    let cmd = |i: Instruction| {
        Ok(Parsed::Command(Command {
            instruction: i,
            span: node.span,
            original: node.original.clone(),
        }))
    };
    let no_flags = || Flags::new(&[]).parse(&node.flags);
    match keyword.as_str() {
        "from" => {
            let name = match args.as_slice() {
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                    let lower = name.to_lowercase();
                    if !valid_stage_name(&lower) {
                        return Err(K::Stage(format!(
                            "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                        )));
                    }
                    Some(lower)
                }
                [_] => None,
                _ => {
                    return Err(K::BadArguments(
                        "FROM requires either one or three arguments".into(),
                    ))
                }
            };
            let f = Flags::new(&[("platform", T::String)]).parse(&node.flags)?;
            Ok(Parsed::From(From {
                base: args.first().cloned().unwrap_or_default(),
                name,
                platform: f.string("platform"),
            }))
        }
        "env" | "label" => {
            let upper = keyword.to_ascii_uppercase();
            no_flags()?;
            let Args::NameValues(pairs) = &node.args else {
                return Err(at_least_one(&upper));
            };
            if pairs.is_empty() {
                return Err(at_least_one(&upper));
            }
            let mut kvs = Vec::new();
            for p in pairs {
                if p.key.is_empty() {
                    return Err(K::BadArguments(format!("{upper} names can not be blank")));
                }
                kvs.push(KeyValue {
                    key: p.key.clone(),
                    value: p.value.clone().unwrap_or_default(),
                    legacy: !p.equals,
                });
            }
            cmd(if keyword == "env" {
                Instruction::Env(kvs)
            } else {
                Instruction::Label(kvs)
            })
        }
        "arg" => {
            let Args::NameValues(pairs) = &node.args else {
                return Err(at_least_one("ARG"));
            };
            if pairs.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut decls = Vec::new();
            for p in pairs {
                if p.key.is_empty() {
                    return Err(K::BadArguments("ARG names can not be blank".into()));
                }
                decls.push(ArgDecl {
                    key: p.key.clone(),
                    value: p.value.clone(),
                });
            }
            // BuildKit never checks ARG's flags; neither do we.
            cmd(Instruction::Arg(decls))
        }
        "maintainer" | "workdir" | "user" => {
            let upper = keyword.to_ascii_uppercase();
            let [one] = args.as_slice() else {
                return Err(exactly_one(&upper));
            };
            no_flags()?;
            let v = one.clone();
            cmd(match keyword.as_str() {
                "maintainer" => Instruction::Maintainer(v),
                "workdir" => Instruction::Workdir(v),
                _ => Instruction::User(v),
            })
        }
        "stopsignal" => {
            let [one] = args.as_slice() else {
                return Err(exactly_one("STOPSIGNAL"));
            };
            // BuildKit does not look at STOPSIGNAL's flags at all.
            cmd(Instruction::StopSignal(one.clone()))
        }
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags()?;
            let mut ports = args;
            ports.sort();
            cmd(Instruction::Expose(ports))
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags()?;
            let mut vols = Vec::new();
            for v in &args {
                let v = v.trim();
                if v.is_empty() {
                    return Err(K::BadArguments(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                vols.push(v.to_string());
            }
            cmd(Instruction::Volume(vols))
        }
        "shell" => {
            no_flags()?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err(K::BadArguments(format!(
                    "SHELL requires the arguments to be in JSON form: {}",
                    node.original
                )));
            }
            cmd(Instruction::Shell(args))
        }
        "cmd" => {
            no_flags()?;
            cmd(Instruction::Cmd(command_line(node, &args)))
        }
        "entrypoint" => {
            no_flags()?;
            cmd(Instruction::Entrypoint(command_line(node, &args)))
        }
        "run" => {
            let f = Flags::new(&[
                ("mount", T::Strings),
                ("network", T::String),
                ("security", T::String),
            ])
            .parse(&node.flags)?;
            let mount_specs = f.strings("mount");
            for m in &mount_specs {
                precheck_mount(m)?;
            }
            let network = match f.raw_string("network").as_deref().unwrap_or("default") {
                "default" => NetworkMode::Default,
                "none" => NetworkMode::None,
                "host" => NetworkMode::Host,
                other => return Err(K::BadFlag(format!("invalid network mode {other:?}"))),
            };
            let security = match f.raw_string("security").as_deref().unwrap_or("sandbox") {
                "sandbox" => Security::Sandbox,
                "insecure" => Security::Insecure,
                other => return Err(K::BadFlag(format!("security {other:?} is not valid"))),
            };
            let files = node
                .heredocs
                .iter()
                .map(|h| InlineFile {
                    name: h.name.clone(),
                    data: h.content.clone(),
                    chomp: h.chomp,
                    expand: h.expand,
                })
                .collect();
            cmd(Instruction::Run(Run {
                cmd: command_line(node, &args),
                files,
                mount_specs,
                network,
                security,
            }))
        }
        "copy" | "add" => parse_copy_add(node, &keyword, args).and_then(cmd),
        "healthcheck" => parse_healthcheck(node, args).and_then(cmd),
        "onbuild" => {
            let Args::Nested(child) = &node.args else {
                return Err(at_least_one("ONBUILD"));
            };
            no_flags()?;
            let trigger = child.keyword.to_ascii_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(K::BadArguments(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                    ))
                }
                "MAINTAINER" | "FROM" => {
                    return Err(K::BadArguments(format!(
                        "{trigger} isn't allowed as an ONBUILD trigger"
                    )))
                }
                _ => {}
            }
            // Check the trigger now so a broken one fails this build, not
            // the next one.
            parse_kind(child)?;
            let mut text = strip_onbuild(&node.original).to_string();
            for h in &node.heredocs {
                text.push('\n');
                text.push_str(&h.content);
                text.push_str(&h.name);
            }
            cmd(Instruction::OnBuild(text))
        }
        _ => {
            // Name it as written, not lower-cased.
            let written = node
                .original
                .split_whitespace()
                .next()
                .filter(|w| w.eq_ignore_ascii_case(&node.keyword))
                .unwrap_or(&node.keyword);
            Err(K::UnknownInstruction(written.to_string()))
        }
    }
}

/// Removes a leading `ONBUILD` keyword (any case) and the blanks around it.
fn strip_onbuild(original: &str) -> &str {
    let t = original.trim_start();
    match t.get(..7) {
        Some(k) if k.eq_ignore_ascii_case("onbuild") => t.get(7..).unwrap_or("").trim_start(),
        _ => original,
    }
}

fn parse_copy_add(node: &Node, keyword: &str, args: Vec<String>) -> Result<Instruction, K> {
    let upper = keyword.to_ascii_uppercase();
    if args.len() < 2 {
        return Err(K::BadArguments(format!(
            "{upper} requires at least two arguments, but only one was provided. Destination could not be determined"
        )));
    }
    let is_add = keyword == "add";
    let defs: &[(&str, T)] = if is_add {
        &[
            ("chown", T::String),
            ("chmod", T::String),
            ("link", T::Bool),
            ("keep-git-dir", T::Bool),
            ("checksum", T::String),
            ("unpack", T::Bool),
            ("exclude", T::Strings),
        ]
    } else {
        &[
            ("chown", T::String),
            ("from", T::String),
            ("chmod", T::String),
            ("link", T::Bool),
            ("exclude", T::Strings),
            ("parents", T::Bool),
        ]
    };
    let f = Flags::new(defs).parse(&node.flags)?;

    let (dest, srcs) = args.split_last().ok_or_else(|| at_least_one(&upper))?;
    if heredoc_marker(dest).is_some() {
        return Err(K::BadArguments(format!(
            "{upper} cannot accept a heredoc as a destination"
        )));
    }
    let mut paths = SourcesAndDest {
        dest: dest.clone(),
        ..Default::default()
    };
    for src in srcs {
        match heredoc_marker(src) {
            Some(m) => {
                let content = node
                    .heredocs
                    .iter()
                    .find(|h| h.name == m.name)
                    .map(|h| h.content.clone())
                    .unwrap_or_default();
                paths.inline_sources.push(InlineSource {
                    data: if m.chomp {
                        chomp_heredoc(&content)
                    } else {
                        content
                    },
                    path: m.name,
                    expand: m.expand,
                });
            }
            None => paths.sources.push(src.clone()),
        }
    }
    Ok(if is_add {
        Instruction::Add(Add {
            paths,
            chown: f.string("chown"),
            chmod: f.string("chmod"),
            link: f.bool("link"),
            keep_git_dir: f.opt_bool("keep-git-dir"),
            checksum: f.string("checksum"),
            unpack: f.opt_bool("unpack"),
            exclude: f.strings("exclude"),
        })
    } else {
        Instruction::Copy(Copy {
            paths,
            from: f.string("from"),
            chown: f.string("chown"),
            chmod: f.string("chmod"),
            link: f.bool("link"),
            parents: f.bool("parents"),
            exclude: f.strings("exclude"),
        })
    })
}

fn parse_healthcheck(node: &Node, args: Vec<String>) -> Result<Instruction, K> {
    let Some((typ, rest)) = args.split_first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_ascii_uppercase();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(K::BadArguments(
                "HEALTHCHECK NONE takes no arguments".into(),
            ));
        }
        // BuildKit skips flag parsing for NONE.
        return Ok(Instruction::Healthcheck(Healthcheck::None));
    }
    let f = Flags::new(&[
        ("interval", T::String),
        ("timeout", T::String),
        ("start-period", T::String),
        ("start-interval", T::String),
        ("retries", T::String),
    ])
    .parse(&node.flags)?;
    if typ != "CMD" {
        return Err(K::BadArguments(format!(
            "Unknown type {typ:?} in HEALTHCHECK (try CMD)"
        )));
    }
    let cmd: Vec<String> = if rest.is_empty() {
        Vec::new()
    } else {
        command_line(node, rest).args()
    };
    if cmd.is_empty() {
        return Err(K::BadArguments(
            "Missing command after HEALTHCHECK CMD".into(),
        ));
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
    test.extend(cmd);
    let dur = |name: &str| -> Result<Duration, K> {
        let Some(s) = f.raw_string(name).filter(|s| !s.is_empty()) else {
            return Ok(Duration::ZERO);
        };
        let d = parse_go_duration(&s).map_err(K::BadFlag)?;
        if d.is_some_and(|d| d.is_zero()) {
            return Ok(Duration::ZERO);
        }
        let Some(d) = d.filter(|d| *d >= Duration::from_millis(1)) else {
            return Err(K::BadFlag(format!(
                "Interval {name:?} cannot be less than 1ms"
            )));
        };
        Ok(d)
    };
    let retries = match f.raw_string("retries").filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => {
            let n: i64 = s.parse().map_err(|_| {
                K::BadFlag(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))
            })?;
            if n < 0 {
                return Err(K::BadFlag(format!("--retries cannot be negative ({n})")));
            }
            u32::try_from(n).map_err(|_| {
                K::BadFlag(format!(
                    "strconv.ParseInt: parsing {s:?}: value out of range"
                ))
            })?
        }
    };
    Ok(Instruction::Healthcheck(Healthcheck::Check {
        test,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries,
    }))
}

/// Go's `time.ParseDuration`: `[-+]?(\d*\.?\d*(ns|us|µs|ms|s|m|h))+` or `0`.
/// `None` for a negative duration (below any minimum).
pub(super) fn parse_go_duration(s: &str) -> Result<Option<Duration>, String> {
    let err = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    let neg = rest.starts_with('-');
    rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
    if rest == "0" {
        return Ok(Some(Duration::ZERO));
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let num = &rest[..num_len];
        if num.is_empty() || num == "." {
            return Err(err());
        }
        let value: f64 = num.parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            _ => return Err(format!("time: unknown unit {unit:?} in duration {s:?}")),
        };
        total += value * scale;
    }
    if !total.is_finite() || total > 9.2e9 {
        return Err(format!("time: invalid duration {s:?}"));
    }
    if neg && total > 0.0 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs_f64(total)))
}
