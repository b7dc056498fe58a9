//! Dispatching one instruction onto a stage, with BuildKit's semantics.
use std::collections::BTreeMap;

use super::config::{parse_duration, parse_ports, Healthcheck};
use super::copy::{
    copy_path, copy_with_parents, resolve_sources, CopyOptions, LayerBuilder, SourceFs,
};
use super::engine::{Engine, StageState};
use super::fsview::{bytes_entry, clean, join, FsView, Origin};
use super::images::{materialize, write_layer};
use super::mode::{resolve_chown, ModeSpec};
use super::pattern::{has_wildcards, PatternList};
use super::stages::{flag, flags, words};
use super::words::{expand_raw, expand_word, expand_words};
use super::{BuildError, RunRequest};
use crate::fsentry::{Content, Kind};
use crate::parser::{Args, Node};

/// Go's `%q` of a string slice: `["a" "b c"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(" "))
}

impl Engine<'_> {
    pub(super) fn dispatch(
        &mut self,
        state: &mut StageState,
        stage: usize,
        node: &Node,
    ) -> Result<(), BuildError> {
        let at = |e: String| BuildError::at(&node.span, e);
        let esc = self.escape;
        let time = self.history_time();
        let kw = node.keyword.as_str();
        let allowed: &[&str] = match kw {
            "copy" => &["from", "chown", "chmod", "link", "parents", "exclude"],
            "add" => &[
                "chown",
                "chmod",
                "link",
                "exclude",
                "checksum",
                "keep-git-dir",
                "unpack",
            ],
            "run" => &["mount", "network", "security", "device"],
            "healthcheck" => &[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ],
            _ => &[],
        };
        for f in &node.flags {
            let name = f
                .trim_start_matches('-')
                .split('=')
                .next()
                .unwrap_or_default();
            if !allowed.contains(&name) {
                return Err(at(format!("unknown flag: {f}")));
            }
        }
        match kw {
            "arg" => {
                let Args::NameValues(pairs) = &node.args else {
                    return Err(at("ARG requires at least one argument".into()));
                };
                let mut parts = Vec::new();
                for pair in pairs {
                    let value = if let Some(v) = self.opts.build_args.get(&pair.key) {
                        Some(v.clone())
                    } else if let Some(d) = &pair.value {
                        Some(expand_word(d, state, esc).map_err(at)?)
                    } else {
                        super::words::Vars::get(&self.global_args, &pair.key)
                    };
                    match &value {
                        Some(v) => {
                            state.set_var(&pair.key, v);
                            parts.push(format!("{}={v}", pair.key));
                        }
                        None => parts.push(pair.key.clone()),
                    }
                }
                state
                    .config
                    .add_history(format!("ARG {}", parts.join(" ")), true, time);
            }
            "env" => {
                let Args::NameValues(pairs) = &node.args else {
                    return Err(at("ENV requires at least one argument".into()));
                };
                let mut msg = String::from("ENV");
                for pair in pairs {
                    let key = expand_word(&pair.key, state, esc).map_err(at)?;
                    let raw = pair.value.clone().unwrap_or_default();
                    let value = expand_word(&raw, state, esc).map_err(at)?;
                    if key.is_empty() {
                        return Err(at("ENV names can not be blank".into()));
                    }
                    state.config.env_set(&key, &value);
                    state.set_var(&key, &value);
                    msg.push_str(&format!(" {key}={value}"));
                }
                state.config.add_history(msg, true, time);
            }
            "label" => {
                let Args::NameValues(pairs) = &node.args else {
                    return Err(at("LABEL requires at least one argument".into()));
                };
                let mut msg = String::from("LABEL");
                for pair in pairs {
                    let key = expand_word(&pair.key, state, esc).map_err(at)?;
                    let raw = pair.value.clone().unwrap_or_default();
                    let value = expand_word(&raw, state, esc).map_err(at)?;
                    msg.push_str(&format!(" {key}={value}"));
                    state
                        .config
                        .config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key, value);
                }
                state.config.add_history(msg, true, time);
            }
            "maintainer" => {
                let m = words(node).join(" ");
                state.config.author = m.clone();
                state
                    .config
                    .add_history(format!("MAINTAINER {m}"), true, time);
            }
            "expose" => {
                let mut ports = Vec::new();
                for w in words(node) {
                    for p in expand_words(&w, state, esc).map_err(at)? {
                        ports.extend(parse_ports(&p).map_err(at)?);
                    }
                }
                let map = state
                    .config
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for p in &ports {
                    map.insert(p.clone(), serde_json::json!({}));
                }
                state
                    .config
                    .add_history(format!("EXPOSE [{}]", ports.join(" ")), true, time);
            }
            "volume" => {
                let mut vols = Vec::new();
                for w in words(node) {
                    if node.json {
                        vols.push(expand_word(&w, state, esc).map_err(at)?);
                    } else {
                        vols.extend(expand_words(&w, state, esc).map_err(at)?);
                    }
                }
                if vols.is_empty() || vols.iter().any(|v| v.is_empty()) {
                    return Err(at("VOLUME specified can not be an empty string".into()));
                }
                let map = state
                    .config
                    .config
                    .volumes
                    .get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                state
                    .config
                    .add_history(format!("VOLUME [{}]", vols.join(" ")), true, time);
            }
            "user" => {
                let u = expand_word(&words(node).join(" "), state, esc).map_err(at)?;
                if u.is_empty() {
                    return Err(at("USER requires exactly one argument".into()));
                }
                state.config.config.user = u.clone();
                state.config.add_history(format!("USER {u}"), true, time);
            }
            "stopsignal" => {
                let s = expand_word(&words(node).join(" "), state, esc).map_err(at)?;
                if !valid_signal(&s) {
                    return Err(at(format!("Invalid signal: {s}")));
                }
                state.config.config.stop_signal = s.clone();
                state
                    .config
                    .add_history(format!("STOPSIGNAL {s}"), true, time);
            }
            "shell" => {
                if !node.json {
                    return Err(at("SHELL requires the arguments to be in JSON form".into()));
                }
                let s = words(node);
                if s.is_empty() {
                    return Err(at("SHELL requires at least one argument".into()));
                }
                state.config.config.shell = Some(s.clone());
                state
                    .config
                    .add_history(format!("SHELL [{}]", s.join(" ")), true, time);
            }
            "cmd" | "entrypoint" => {
                let mut args = words(node);
                if !node.json {
                    let mut sh = state.config.shell();
                    sh.push(args.join(" "));
                    args = sh;
                }
                let msg = format!("{} {}", kw.to_ascii_uppercase(), go_quote_list(&args));
                if kw == "cmd" {
                    state.config.config.cmd = Some(args);
                    state.config.config.args_escaped = true;
                    state.cmd_set = true;
                } else {
                    state.config.config.entrypoint = Some(args);
                    if !state.cmd_set {
                        state.config.config.cmd = None;
                    }
                }
                state.config.add_history(msg, true, time);
            }
            "healthcheck" => {
                let hc = healthcheck(node).map_err(at)?;
                state.config.config.healthcheck = Some(hc);
                state.config.add_history(
                    format!("HEALTHCHECK {}", node.original.trim()),
                    true,
                    time,
                );
            }
            "onbuild" => {
                let expr = onbuild_expression(node).map_err(at)?;
                state
                    .config
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(expr.clone());
                state.onbuild_written.push(expr);
            }
            "workdir" => self.workdir(state, node).map_err(at)?,
            "copy" | "add" => self.copy(state, stage, node).map_err(at)?,
            "run" => self.run(state, node).map_err(at)?,
            "from" => return Err(at("internal: FROM inside a stage".into())),
            other => {
                return Err(at(format!(
                    "unknown instruction: {}",
                    other.to_ascii_uppercase()
                )))
            }
        }
        Ok(())
    }

    fn workdir(&mut self, state: &mut StageState, node: &Node) -> Result<(), String> {
        let p = expand_word(&words(node).join(" "), state, self.escape)?;
        if p.is_empty() {
            return Err("WORKDIR requires exactly one argument".into());
        }
        let wd = if p.starts_with('/') {
            format!("/{}", clean(&p))
        } else {
            let cur = state.config.config.working_dir.clone();
            format!("/{}", join(&clean(&cur), &p))
        };
        state.config.config.working_dir = wd.clone();
        let time = self.history_time();
        if wd == "/" {
            state
                .config
                .add_history(format!("WORKDIR {wd}"), true, time);
            return Ok(());
        }
        let user = state.config.config.user.clone();
        let chown = if user.is_empty() {
            None
        } else {
            // BuildKit resolves the owner in the stage; an unknown name
            // leaves the directory to root, as it does.
            let (passwd, group) = self.user_files(state)?;
            resolve_chown(&user, passwd.as_deref(), group.as_deref()).ok()
        };
        let opts = CopyOptions {
            chown,
            created_time: self.created_time(),
            ..CopyOptions::default()
        };
        let mut layer = LayerBuilder::new(std::mem::take(&mut state.fs));
        let made = layer.mkdir_all(&clean(&wd), &opts);
        let (view, entries) = layer.finish();
        state.fs = view;
        made?;
        self.commit_layer(state, entries, format!("WORKDIR {wd}"))
    }

    fn created_time(&self) -> i64 {
        self.opts.source_date_epoch.unwrap_or(0)
    }

    /// Reads /etc/passwd and /etc/group of the stage.
    fn user_files(&self, state: &StageState) -> Result<(Option<String>, Option<String>), String> {
        let read = |path: &str| -> Result<Option<String>, String> {
            let Some(node) = state.fs.stat(path) else {
                return Ok(None);
            };
            let mut one = vec![(node.entry.clone(), node.origin.clone())];
            materialize(&mut one, &self.opts.scratch)?;
            let bytes = match one.first().map(|(e, _)| &e.kind) {
                Some(Kind::File {
                    content: Content::Bytes(b),
                    ..
                }) => b.to_vec(),
                Some(Kind::File {
                    content: Content::Path(p),
                    ..
                }) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
                _ => return Ok(None),
            };
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((read("etc/passwd")?, read("etc/group")?))
    }

    /// Writes a layer from the entries (if any) and records the history.
    pub(super) fn commit_layer(
        &mut self,
        state: &mut StageState,
        mut entries: Vec<(crate::fsentry::Entry, Origin)>,
        created_by: String,
    ) -> Result<(), String> {
        let time = self.history_time();
        if entries.is_empty() {
            state.config.add_history(created_by, true, time);
            return Ok(());
        }
        materialize(&mut entries, &self.opts.scratch)?;
        // The view must not point into another stage's layers any more.
        state.fs.apply(entries.iter().cloned());
        let blob = write_layer(&entries, &self.opts.scratch, self.opts.source_date_epoch)?;
        state.config.rootfs.diff_ids.push(blob.diff_id.clone());
        state.layers.push(blob);
        state.config.add_history(created_by, false, time);
        Ok(())
    }

    fn run(&mut self, state: &mut StageState, node: &Node) -> Result<(), String> {
        let mut argv = words(node);
        if !node.json {
            let mut sh = state.config.shell();
            sh.push(argv.join(" "));
            argv = sh;
        }
        let env: Vec<String> = state.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = RunRequest {
            layers: state.layers.clone(),
            argv: argv.clone(),
            env,
            user: state.config.config.user.clone(),
            workdir: state.config.config.working_dir.clone(),
            network: flag(node, "network").unwrap_or("default").to_string(),
            mounts: flags(node, "mount").into_iter().map(String::from).collect(),
        };
        let Some(runner) = self.runner.as_deref_mut() else {
            return Err(
                "RUN is not supported yet: kiln builds Dockerfiles without RUN steps for now"
                    .into(),
            );
        };
        let layer = runner.run(&request)?;
        let time = self.history_time();
        let msg = format!("RUN {} # buildkit", argv.join(" "));
        match layer {
            Some(blob) => {
                state
                    .fs
                    .apply(super::images::read_layer_entries(&blob.path)?);
                state.config.rootfs.diff_ids.push(blob.diff_id.clone());
                state.layers.push(blob);
                state.config.add_history(msg, false, time);
            }
            None => state.config.add_history(msg, true, time),
        }
        Ok(())
    }

    fn copy(&mut self, state: &mut StageState, stage: usize, node: &Node) -> Result<(), String> {
        let esc = self.escape;
        let is_add = node.keyword == "add";
        let args = words(node);
        if args.len() < 2 && node.heredocs.is_empty() {
            return Err(format!(
                "{} requires at least two arguments, but only one was provided. Destination could not be determined",
                node.keyword.to_ascii_uppercase()
            ));
        }
        let (srcs, dest_raw) = args.split_at(args.len().saturating_sub(1));
        let dest_raw = dest_raw.first().cloned().unwrap_or_default();
        let dest_word = expand_word(&dest_raw, state, esc)?;
        let dest = dest_relative_to_workdir(&state.config.config.working_dir, &dest_word);

        let chown_spec = match flag(node, "chown") {
            Some(c) if !c.is_empty() => Some(expand_word(c, state, esc)?),
            _ => None,
        };
        let chmod = match flag(node, "chmod") {
            Some(c) if !c.is_empty() => Some(ModeSpec::parse(&expand_word(c, state, esc)?)?),
            _ => None,
        };
        let excludes: Vec<String> = flags(node, "exclude")
            .into_iter()
            .map(|e| expand_word(e, state, esc))
            .collect::<Result<_, _>>()?;
        let parents = flag(node, "parents").is_some_and(|v| v.is_empty() || v == "true");
        let checksum = flag(node, "checksum").map(String::from);
        if checksum.is_some() && srcs.len() != 1 {
            return Err("checksum can't be specified for multiple sources".into());
        }
        let chown = match &chown_spec {
            None => None,
            Some(spec) => {
                let (passwd, group) = self.user_files(state)?;
                Some(resolve_chown(spec, passwd.as_deref(), group.as_deref())?)
            }
        };
        let opts = CopyOptions {
            chown,
            mode: chmod,
            created_time: self.created_time(),
            exclude: PatternList::new(&excludes),
            parents,
        };

        // The source tree: the context, a stage, an image, a named context.
        let from = flag(node, "from").map(String::from);
        let from_state: Option<StageState> = match &from {
            None => None,
            Some(f) => {
                let f = expand_word(f, &self.global_args, esc)?;
                if let Some(nc) = self.opts.named_contexts.get(&f) {
                    if let super::NamedContext::Dir(_) = nc {
                        None
                    } else {
                        let p = state.platform.clone();
                        Some(self.image_state(&f, &p)?)
                    }
                } else if let Some(j) = self.plan.find(&f) {
                    if j >= stage {
                        return Err(format!(
                            "cannot copy from stage {f:?}, it needs to be defined before the current stage"
                        ));
                    }
                    self.build_stage(j).map_err(|e| e.message)?;
                    self.built.get(&j).cloned()
                } else {
                    let p = state.platform.clone();
                    Some(self.image_state(&f, &p)?)
                }
            }
        };
        let named_dir = from
            .as_ref()
            .and_then(|f| match self.opts.named_contexts.get(f) {
                Some(super::NamedContext::Dir(d)) => Some(super::copy::HostDir::new(
                    d,
                    crate::context::IgnoreRules::default(),
                )),
                _ => None,
            });
        let source: &dyn SourceFs = match (&from_state, &named_dir) {
            (Some(s), _) => &s.fs,
            (None, Some(d)) => d,
            (None, None) => &self.context,
        };

        let mut layer = LayerBuilder::new(std::mem::take(&mut state.fs));
        let result = (|| -> Result<(), String> {
            for src in srcs {
                if let Some(name) = heredoc_name(src) {
                    let doc = node
                        .heredocs
                        .iter()
                        .find(|h| h.name == name)
                        .ok_or_else(|| format!("heredoc {name:?} has no body"))?;
                    let text = if doc.expand {
                        expand_raw(&doc.content, state, esc)?
                    } else {
                        doc.content.clone()
                    };
                    let mut view = FsView::new();
                    let e = bytes_entry(&name, text.as_bytes(), 0o644, opts.created_time);
                    view.apply([(e, Origin::Entry)]);
                    copy_path(&mut layer, &view, &name, &dest, &opts)?;
                    continue;
                }
                let src = expand_word(src, state, esc)?;
                if is_add && (src.starts_with("http://") || src.starts_with("https://")) {
                    let view =
                        super::fetch::download(&src, checksum.as_deref(), &self.opts.scratch)?;
                    let name = view.children("").into_iter().next().unwrap_or_default();
                    copy_path(&mut layer, &view, &name, &dest, &opts)?;
                    continue;
                }
                if checksum.is_some() {
                    return Err("checksum requires HTTP(S) or Git sources".into());
                }
                if opts.parents {
                    let (root, pattern) = match src.split_once("/./") {
                        Some((r, p)) => (clean(r), clean(p)),
                        None => (String::new(), clean(&src)),
                    };
                    let matches = resolve_sources(source, &join(&root, &pattern))?;
                    for m in matches {
                        let rel = m.strip_prefix(&root).unwrap_or(&m).trim_start_matches('/');
                        copy_with_parents(&mut layer, source, &root, rel, &dest, &opts)?;
                    }
                    continue;
                }
                let matches = resolve_sources(source, &src)?;
                if matches.is_empty() && !has_wildcards(&src) {
                    return Err(format!("\"/{}\" not found: not found", clean(&src)));
                }
                for m in matches {
                    if is_add && from_state.is_none() {
                        if let Some(host) = self.host_file(source, &m)? {
                            if let Some(reader) = super::archive::open_archive(&host)? {
                                let target = layer.mkdir_all(&clean(&dest), &opts)?;
                                super::archive::extract(
                                    &mut layer,
                                    reader,
                                    &target,
                                    &opts,
                                    &self.opts.scratch,
                                    &m,
                                )?;
                                continue;
                            }
                        }
                    }
                    copy_path(&mut layer, source, &m, &dest, &opts)?;
                }
            }
            Ok(())
        })();
        let (view, entries) = layer.finish();
        state.fs = view;
        result?;

        let mut msg = String::from(if is_add { "ADD" } else { "COPY" });
        if parents {
            msg.push_str(" --parents");
        }
        if let Some(c) = &chown_spec {
            msg.push_str(&format!(" --chown={c}"));
        }
        if let Some(c) = flag(node, "chmod") {
            msg.push_str(&format!(" --chmod={c}"));
        }
        for s in srcs {
            msg.push(' ');
            msg.push_str(s);
        }
        msg.push_str(&format!(" {dest_raw} # buildkit"));
        self.commit_layer(state, entries, msg)
    }

    /// The host path of a context file when the source is a host directory.
    fn host_file(
        &self,
        source: &dyn SourceFs,
        path: &str,
    ) -> Result<Option<std::path::PathBuf>, String> {
        let resolved = source.resolve(path, true)?;
        match source.lstat(&resolved)? {
            Some(n) => match n.entry.kind {
                Kind::File {
                    content: Content::Path(p),
                    ..
                } => Ok(Some(p)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` → `EOF`.
fn heredoc_name(word: &str) -> Option<String> {
    let rest = word.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let name = rest.trim_matches(|c| c == '"' || c == '\'');
    (!name.is_empty()).then(|| name.to_string())
}

/// BuildKit's pathRelativeToWorkingDir: absolute paths stay, others join
/// the working directory; a trailing slash (or `.`) is kept as the
/// "this is a directory" marker.
fn dest_relative_to_workdir(workdir: &str, dest: &str) -> String {
    let dir_marker = dest.ends_with('/') || dest.ends_with("/.") || dest == "." || dest.is_empty();
    let joined = if dest.starts_with('/') {
        clean(dest)
    } else {
        join(&clean(workdir), dest)
    };
    let mut out = format!("/{joined}");
    if dir_marker && out != "/" {
        out.push('/');
    }
    out
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return n > 0 && n < 65;
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    NAMES.contains(&name)
        || name
            .strip_prefix("RTMIN")
            .or_else(|| name.strip_prefix("RTMAX"))
            .is_some()
}

fn healthcheck(node: &Node) -> Result<Healthcheck, String> {
    let w = words(node);
    let Some(first) = w.first() else {
        return Err("HEALTHCHECK requires an argument".into());
    };
    let kind = first.to_ascii_uppercase();
    let rest: Vec<String> = w.iter().skip(1).cloned().collect();
    if kind == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck {
            test: vec!["NONE".into()],
            ..Healthcheck::default()
        });
    }
    if kind != "CMD" {
        return Err(format!("Unknown type {first:?} in HEALTHCHECK (try CMD)"));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let test = if node.json {
        std::iter::once("CMD".to_string()).chain(rest).collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let dur = |name: &str| -> Result<i64, String> {
        match flag(node, name) {
            None | Some("") => Ok(0),
            Some(v) => {
                let d = parse_duration(v)?;
                if d != 0 && d < 1_000_000 {
                    return Err(format!("Interval {name:?} cannot be less than 1ms"));
                }
                if d < 0 {
                    return Err(format!("Interval {name:?} cannot be negative"));
                }
                Ok(d)
            }
        }
    };
    let retries = match flag(node, "retries") {
        None | Some("") => 0,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|r| *r >= 0)
            .ok_or_else(|| format!("--retries cannot be negative or invalid: {v}"))?,
    };
    Ok(Healthcheck {
        test,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries,
    })
}

fn onbuild_expression(node: &Node) -> Result<String, String> {
    let original = node.original.trim_start();
    let rest = original
        .get(..7)
        .filter(|k| k.eq_ignore_ascii_case("onbuild"))
        .map(|_| original[7..].trim())
        .unwrap_or(original);
    let kw = rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match kw.as_str() {
        "" => Err("ONBUILD requires at least one argument".into()),
        "ONBUILD" => Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "FROM" | "MAINTAINER" => Err(format!("{kw} isn't allowed as an ONBUILD trigger")),
        _ => {
            let mut expr = rest.to_string();
            if let Args::Nested(inner) = &node.args {
                for doc in &inner.heredocs {
                    expr.push('\n');
                    expr.push_str(&doc.content);
                    expr.push_str(&doc.name);
                }
            }
            Ok(expr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_rules() {
        assert_eq!(dest_relative_to_workdir("/", "/x"), "/x");
        assert_eq!(dest_relative_to_workdir("/app", "."), "/app/");
        assert_eq!(dest_relative_to_workdir("/app", "sub/"), "/app/sub/");
        assert_eq!(
            dest_relative_to_workdir("/app", "renamed.md"),
            "/app/renamed.md"
        );
        assert_eq!(dest_relative_to_workdir("/", "/"), "/");
        assert_eq!(dest_relative_to_workdir("/", "../../etc/"), "/etc/");
    }

    #[test]
    fn go_quoting() {
        assert_eq!(
            go_quote_list(&["echo".into(), "exec form".into()]),
            r#"["echo" "exec form"]"#
        );
    }

    #[test]
    fn signals() {
        assert!(valid_signal("SIGQUIT"));
        assert!(valid_signal("9"));
        assert!(valid_signal("TERM"));
        assert!(!valid_signal("SIGNOPE"));
    }
}
