//! Dispatching one instruction onto a stage, with BuildKit's semantics.
use std::collections::BTreeMap;

use super::cached::Lookup;
use super::config::{
    add_history, expose_history, go_quote_list, healthcheck_history, shell, working_dir,
    Healthcheck,
};
use super::copy::{copy_path, has_wildcards, resolve_sources, CopyOptions, LayerBuilder, SourceFs};
use super::engine::{instruction_error, Engine, StageState};
use super::fsview::{bytes_entry, clean, join, FsView, Origin};
use super::images::materialize;
use super::mode::{chown_parts, resolve_chown, ModeSpec, OwnerPart};
use super::{BuildError, RunRequest};
use crate::fsentry::{Content, Kind};
use crate::instructions::{self, Command, CommandLine, Instruction, SourcesAndDest, StageRef};
use crate::progress::{Event, StepId, StepResult};

/// A COPY or ADD with its expanded arguments.
pub(super) struct CopyRequest {
    pub is_add: bool,
    pub paths: SourcesAndDest,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub unpack: bool,
    /// `--link`: copy onto an empty root, merge the result on top.
    pub link: bool,
}

impl Engine<'_> {
    pub(super) fn dispatch(
        &self,
        state: &mut StageState,
        stage: usize,
        cmd: &Command,
    ) -> Result<(), BuildError> {
        if let Some(reason) = self.hooks.cancel.reason() {
            return Err(BuildError::general(format!("build {reason}")));
        }
        state.position += 1;
        let lines = (cmd.span.start_line > 0).then_some((cmd.span.start_line, cmd.span.end_line));
        let (id, start) = self.step_started(state, cmd.original.trim(), lines);
        let result = self.dispatch_step(state, stage, cmd, id);
        match &result {
            Ok(()) if state.cached_step == Some(id) => {}
            Ok(()) => self.hooks.reporter.event(&Event::StepFinished {
                id,
                duration: start.elapsed(),
                result: StepResult::Done,
            }),
            // Stopped because of another step or Ctrl-C: not this
            // step's failure.
            Err(_) if self.hooks.cancel.is_cancelled() => {
                self.hooks.reporter.event(&Event::StepFinished {
                    id,
                    duration: start.elapsed(),
                    result: StepResult::Cancelled,
                })
            }
            Err(e) => self.hooks.reporter.event(&Event::StepFailed {
                id,
                error: e.message.clone(),
                last_lines: Vec::new(),
                duration: start.elapsed(),
            }),
        }
        result
    }

    fn dispatch_step(
        &self,
        state: &mut StageState,
        stage: usize,
        cmd: &Command,
        id: StepId,
    ) -> Result<(), BuildError> {
        let at = |e: String| BuildError::at(&cmd.span, e);
        let resolved = state.scope.apply(cmd).map_err(instruction_error)?;
        let time = self.history_time();
        match resolved.instruction {
            Instruction::Arg(decls) => {
                let parts: Vec<String> = decls
                    .iter()
                    .map(|d| match &d.value {
                        Some(v) => format!("{}={v}", d.key),
                        None => d.key.clone(),
                    })
                    .collect();
                add_history(
                    &mut state.config,
                    format!("ARG {}", parts.join(" ")),
                    true,
                    time,
                );
            }
            Instruction::Env(kvs) => {
                let mut msg = String::from("ENV");
                for kv in &kvs {
                    state.config.env_set(&kv.key, &kv.value);
                    msg.push_str(&format!(" {}={}", kv.key, kv.value));
                }
                add_history(&mut state.config, msg, true, time);
            }
            Instruction::Label(kvs) => {
                let mut msg = String::from("LABEL");
                let labels = state.config.config.labels.get_or_insert_with(BTreeMap::new);
                for kv in kvs {
                    msg.push_str(&format!(" {}={}", kv.key, kv.value));
                    labels.insert(kv.key, kv.value);
                }
                add_history(&mut state.config, msg, true, time);
            }
            Instruction::Maintainer(m) => {
                state.config.author = Some(m.clone());
                add_history(&mut state.config, format!("MAINTAINER {m}"), true, time);
            }
            Instruction::Expose(ports) => {
                let map = state
                    .config
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for p in &ports {
                    map.insert(p.clone(), serde_json::json!({}));
                }
                add_history(&mut state.config, expose_history(&ports), true, time);
            }
            Instruction::Volume(vols) => {
                let map = state
                    .config
                    .config
                    .volumes
                    .get_or_insert_with(BTreeMap::new);
                for v in &vols {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                add_history(
                    &mut state.config,
                    format!("VOLUME [{}]", vols.join(" ")),
                    true,
                    time,
                );
            }
            Instruction::User(u) => {
                state.config.config.user = Some(u.clone());
                add_history(&mut state.config, format!("USER {u}"), true, time);
            }
            Instruction::StopSignal(s) => {
                state.config.config.stop_signal = Some(s.clone());
                add_history(&mut state.config, format!("STOPSIGNAL {s}"), true, time);
            }
            Instruction::Shell(s) => {
                state.config.config.shell = Some(s.clone());
                add_history(
                    &mut state.config,
                    format!("SHELL [{}]", s.join(" ")),
                    true,
                    time,
                );
            }
            Instruction::Cmd(line) | Instruction::Entrypoint(line) => {
                let is_cmd = matches!(cmd.instruction, Instruction::Cmd(_));
                let args = match line {
                    CommandLine::Exec(v) => v,
                    CommandLine::Shell(s) => {
                        let mut sh = shell(&state.config);
                        sh.push(s);
                        sh
                    }
                };
                let kw = if is_cmd { "CMD" } else { "ENTRYPOINT" };
                let msg = format!("{kw} {}", go_quote_list(&args));
                if is_cmd {
                    state.config.config.cmd = Some(args);
                    state.config.config.args_escaped = Some(true);
                    state.cmd_set = true;
                } else {
                    state.config.config.entrypoint = Some(args);
                    if !state.cmd_set {
                        state.config.config.cmd = None;
                    }
                }
                add_history(&mut state.config, msg, true, time);
            }
            Instruction::Healthcheck(h) => {
                let nanos =
                    |d: std::time::Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                let hc = match h {
                    instructions::Healthcheck::None => Healthcheck {
                        test: Some(vec!["NONE".into()]),
                        ..Healthcheck::default()
                    },
                    instructions::Healthcheck::Check {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => {
                        let set = |d: std::time::Duration| (!d.is_zero()).then(|| nanos(d));
                        Healthcheck {
                            test: Some(test),
                            interval: set(interval),
                            timeout: set(timeout),
                            start_period: set(start_period),
                            start_interval: set(start_interval),
                            retries: (retries != 0).then_some(i64::from(retries)),
                            ..Healthcheck::default()
                        }
                    }
                };
                let msg = healthcheck_history(&hc);
                state.config.config.healthcheck = Some(hc);
                add_history(&mut state.config, msg, true, time);
            }
            Instruction::OnBuild(expr) => {
                state
                    .config
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(expr.clone());
                state.onbuild_written.push(expr);
            }
            Instruction::Workdir(wd) => self.workdir(state, &wd, id).map_err(at)?,
            Instruction::Copy(c) => {
                let req = CopyRequest {
                    is_add: false,
                    paths: c.paths,
                    from: c.from,
                    chown: c.chown,
                    chmod: c.chmod,
                    parents: c.parents,
                    exclude: c.exclude,
                    checksum: None,
                    unpack: false,
                    link: c.link,
                };
                self.copy(state, stage, req, id).map_err(at)?
            }
            Instruction::Add(a) => {
                let req = CopyRequest {
                    is_add: true,
                    paths: a.paths,
                    from: None,
                    chown: a.chown,
                    chmod: a.chmod,
                    parents: false,
                    exclude: a.exclude,
                    checksum: a.checksum,
                    unpack: a.unpack.unwrap_or(true),
                    link: a.link,
                };
                self.copy(state, stage, req, id).map_err(at)?
            }
            Instruction::Run(run) => {
                let proxy = resolved.proxy_env.clone();
                self.run(state, stage, run, resolved.mounts, resolved.env, proxy, id)
                    .map_err(at)?
            }
        }
        Ok(())
    }

    fn workdir(&self, state: &mut StageState, wd: &str, id: StepId) -> Result<(), String> {
        state.config.config.working_dir = Some(wd.to_string());
        let time = self.history_time();
        if wd == "/" {
            add_history(&mut state.config, format!("WORKDIR {wd}"), true, time);
            return Ok(());
        }
        let user = state.config.config.user.clone().unwrap_or_default();
        let text = format!("WORKDIR {wd}");
        state.chain.set_user(&user);
        let builder = Some(state.chain.other("WORKDIR", &text));
        let layers_before = state.layers.len();
        let pending = match self.cache_lookup(state, id, "WORKDIR", &text, builder)? {
            Lookup::Hit => return self.hit(state, id),
            Lookup::Miss(p) => p,
        };
        let chown = if user.is_empty() {
            None
        } else {
            // BuildKit resolves the owner in the stage; an unknown name
            // falls back to 0, as it does.
            refuse_name_on_empty_root(state, "USER", &user)?;
            state.sync_fs()?;
            let (passwd, group) = self.user_files(state)?;
            Some(resolve_chown(&user, passwd.as_deref(), group.as_deref()))
        };
        let opts = CopyOptions {
            chown,
            created_time: self.created_time(),
            ..CopyOptions::default()
        };
        state.sync_fs()?;
        let mut layer = LayerBuilder::new(std::mem::take(&mut state.fs));
        let made = layer.mkdir_all(&clean(wd), &opts);
        let (view, entries) = layer.finish();
        state.fs = view;
        made?;
        self.commit_layer(state, entries, text)?;
        self.cache_record(state, pending, layers_before)
    }

    fn hit(&self, state: &mut StageState, id: StepId) -> Result<(), String> {
        state.cached_step = Some(id);
        Ok(())
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
                    content: c @ (Content::Path(_) | Content::InRoot { .. }),
                    ..
                }) => {
                    let p = c.host_path().unwrap_or_default();
                    let mut b = Vec::new();
                    c.open()
                        .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut b))
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                    b
                }
                _ => return Ok(None),
            };
            Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((read("etc/passwd")?, read("etc/group")?))
    }

    /// Writes a layer from the entries (if any) and records the history.
    pub(super) fn commit_layer(
        &self,
        state: &mut StageState,
        mut entries: Vec<(crate::fsentry::Entry, Origin)>,
        created_by: String,
    ) -> Result<(), String> {
        let time = self.history_time();
        if entries.is_empty() {
            add_history(&mut state.config, created_by, true, time);
            return Ok(());
        }
        // The entries come from the stage's view (a `LayerBuilder`), so only
        // those `materialize` re-points differ from it: the view must not
        // point into another stage's layers any more. Applying just those
        // spares a clone of every entry of a large layer.
        let from_layers: Vec<usize> = entries
            .iter()
            .enumerate()
            .filter(|(_, (_, origin))| matches!(origin, Origin::Layer { .. }))
            .map(|(i, _)| i)
            .collect();
        materialize(&mut entries, &self.opts.scratch)?;
        state.sync_fs()?;
        state
            .fs
            .apply(from_layers.iter().filter_map(|&i| entries.get(i)).cloned());
        let opts = crate::layer::LayerOptions {
            compression: self.opts.compression,
            source_date_epoch: self.opts.source_date_epoch,
        };
        let layer =
            crate::layer::write_layer(self.store, entries.into_iter().map(|(e, _)| e), &opts)
                .map_err(|e| e.to_string())?;
        let blob = super::LayerBlob {
            path: self.store.blob_path(&layer.descriptor.digest),
            digest: layer.descriptor.digest.to_string(),
            diff_id: layer.diff_id.to_string(),
            size: layer.descriptor.size,
            media_type: layer.descriptor.media_type.clone(),
        };
        state.layers.push(blob);
        add_history(&mut state.config, created_by, false, time);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        state: &mut StageState,
        stage: usize,
        run: instructions::Run,
        mounts: Vec<instructions::Mount>,
        key_env: Vec<(String, String)>,
        proxy_env: Vec<(String, String)>,
        id: StepId,
    ) -> Result<(), String> {
        if run.security == instructions::Security::Insecure {
            // BuildKit runs it only with the security.insecure entitlement
            // (`--allow`); running it sandboxed instead would quietly
            // give the step less than it asked for.
            return Err("RUN --security=insecure is not allowed: it needs the \
                        security.insecure entitlement, which kiln does not grant"
                .into());
        }
        let mut env = key_env.clone();
        env.extend(proxy_env);
        let shell = state.config.config.shell.clone().unwrap_or_default();
        let invocation = state
            .scope
            .run_invocation(&run, &shell)
            .map_err(|k| k.to_string())?;
        let argv = invocation.args.clone();
        let mut mount_roots = Vec::new();
        for m in &mounts {
            // BuildKit refuses to mount over the whole root (a relative
            // target is taken from the working directory).
            let whole_root = matches!(
                m.kind,
                instructions::MountType::Bind
                    | instructions::MountType::Cache
                    | instructions::MountType::Tmpfs
            ) && if m.target.starts_with('/') {
                clean(&m.target).is_empty()
            } else {
                clean(&format!("{}/{}", working_dir(&state.config), m.target)).is_empty()
            };
            if whole_root {
                return Err(format!("invalid mount target {:?}", "/"));
            }
            // A cache mount's `from=` is the content a new cache starts with.
            let from_kind = matches!(
                m.kind,
                instructions::MountType::Bind | instructions::MountType::Cache
            );
            let root = if from_kind && !m.from.is_empty() {
                Some(self.mount_root(state, stage, &m.from)?)
            } else {
                None
            };
            mount_roots.push(root);
        }
        if self.runner.is_none() {
            return Err(
                "RUN is not supported yet: kiln builds Dockerfiles without RUN steps for now"
                    .into(),
            );
        }
        let builder = self.run_key(state, &run, &mounts, &mount_roots, &key_env, &invocation);
        let layers_before = state.layers.len();
        let created_by = invocation.created_by.clone();
        let pending = match self.cache_lookup(state, id, "RUN", &created_by, builder)? {
            Lookup::Hit => return self.hit(state, id),
            Lookup::Miss(p) => p,
        };
        let request = RunRequest {
            layers: state.layers.clone(),
            argv: argv.clone(),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            user: state.config.config.user.clone().unwrap_or_default(),
            workdir: working_dir(&state.config),
            network: run.network,
            mounts,
            mount_roots,
            script: invocation.script.clone(),
            extra_hosts: self.opts.extra_hosts.clone(),
            shm_size: self.opts.shm_size,
        };
        let Some(runner) = self.runner else {
            return Err("internal: no RUN executor".into());
        };
        self.hooks.cancel.check().map_err(|e| e.to_string())?;
        let mut output = crate::progress::StepOutput::new(self.hooks.reporter, id);
        let layer = runner.run(
            &request,
            &mut super::RunControl {
                cancel: &self.hooks.cancel,
                output: &mut output,
            },
        )?;
        let time = self.history_time();
        let msg = invocation.created_by;
        match layer {
            Some(blob) => {
                // Read lazily, after any cached layers before it.
                state.fs_pending.push(blob.path.clone());
                state.layers.push(blob);
                add_history(&mut state.config, msg, false, time);
            }
            None => add_history(&mut state.config, msg, true, time),
        }
        self.cache_record(state, pending, layers_before)
    }

    fn copy(
        &self,
        state: &mut StageState,
        stage: usize,
        req: CopyRequest,
        id: StepId,
    ) -> Result<(), String> {
        let is_add = req.is_add;
        let srcs = req.paths.sources.clone();
        let dest_word = req.paths.dest.clone();
        let dest = dest_relative_to_workdir(&working_dir(&state.config), &dest_word);
        let chown_spec = req.chown.clone();
        let chmod = req.chmod.as_deref().map(ModeSpec::parse).transpose()?;
        let parents = req.parents;
        let checksum = req.checksum.clone();
        // The frontend's checks, made before anything is read or fetched.
        if checksum.is_some() {
            if srcs.len() != 1 {
                return Err("checksum can't be specified for multiple sources".into());
            }
            if !srcs
                .iter()
                .all(|s| s.starts_with("http://") || s.starts_with("https://"))
            {
                return Err("checksum requires HTTP(S) or Git sources".into());
            }
        }
        let chown = match &chown_spec {
            None => None,
            Some(spec) if req.link && req.chmod.is_none() => {
                // BuildKit runs a linked copy on an empty root, which has no
                // /etc/passwd to look a name up in: its solver refuses a
                // named owner there ("invalid user index: -1").
                if let (OwnerPart::Name(name), _) | (_, Some(OwnerPart::Name(name))) =
                    chown_parts(spec)
                {
                    return Err(format!(
                        "--chown={spec} with --link: invalid user index: -1 ({name:?} is a name, \
                         and a --link copy has no /etc/passwd or /etc/group to look it up in; \
                         use numeric ids, or drop --link)"
                    ));
                }
                Some(resolve_chown(spec, None, None))
            }
            Some(spec) => {
                refuse_name_on_empty_root(state, "--chown", spec)?;
                state.sync_fs()?;
                let (passwd, group) = self.user_files(state)?;
                Some(resolve_chown(spec, passwd.as_deref(), group.as_deref()))
            }
        };
        let opts = CopyOptions {
            chown,
            mode: chmod,
            created_time: self.created_time(),
            exclude: crate::context::IgnoreRules::from_patterns(&req.exclude)
                .map_err(|e| format!("--exclude: {e}"))?,
            parents,
        };

        // The source tree: the context, a stage, an image, a named context.
        let from_fs: Option<FsView> = match &req.from {
            None => None,
            Some(f) => match self.opts.named_contexts.get(f) {
                Some(super::NamedContext::Dir(_)) => None,
                Some(_) => {
                    let p = state.platform.clone();
                    Some(self.image(f, &p)?.1.view()?)
                }
                None => match self.stages.resolve_from(f).map_err(|k| k.to_string())? {
                    StageRef::Stage(j) => {
                        if j >= stage {
                            return Err(format!(
                                "cannot copy from stage {f:?}, it needs to be defined before the current stage"
                            ));
                        }
                        let built = self.build_stage(j).map_err(|e| e.message)?;
                        let mut s = super::engine::lock(&built);
                        s.sync_fs()?;
                        Some(s.fs.clone())
                    }
                    StageRef::Image(reference) => {
                        let p = state.platform.clone();
                        Some(self.image(&reference, &p)?.1.view()?)
                    }
                },
            },
        };
        let named_dir = req
            .from
            .as_ref()
            .and_then(|f| match self.opts.named_contexts.get(f) {
                Some(super::NamedContext::Dir(d)) => Some(super::copy::HostDir::new(
                    d,
                    crate::context::IgnoreRules::default(),
                )),
                _ => None,
            });
        let msg = copy_history(&req, &chown_spec, &srcs, &dest_word);
        let builder = self.copy_key(state, &req, &srcs, &opts.chown, &msg)?;
        let kind = if is_add { "ADD" } else { "COPY" };
        let layers_before = state.layers.len();
        let pending = match self.cache_lookup(state, id, kind, &msg, builder)? {
            Lookup::Hit => return self.hit(state, id),
            Lookup::Miss(p) => p,
        };
        let source: &dyn SourceFs = match (&from_fs, &named_dir) {
            (Some(s), _) => s,
            (None, Some(d)) => d,
            (None, None) => &self.context,
        };

        state.sync_fs()?;
        // `--link` (BuildKit ignores it with `--chmod`): the copy runs on an
        // empty root and its result is merged onto the stage, so the layer
        // holds only what the copy made (fresh parent directories, no
        // symlink of the stage followed) and replaces what it overlaps.
        let linked = req.link && req.chmod.is_none();
        let merge_onto = linked.then(|| std::mem::take(&mut state.fs));
        let mut layer = LayerBuilder::new(std::mem::take(&mut state.fs));
        let result = (|| -> Result<(), String> {
            for src in &srcs {
                if is_add && (src.starts_with("http://") || src.starts_with("https://")) {
                    let view =
                        super::fetch::download(src, checksum.as_deref(), &self.opts.scratch)?;
                    let name = view.children("").into_iter().next().unwrap_or_default();
                    copy_path(&mut layer, &view, &name, &dest, &opts)?;
                    continue;
                }
                if opts.parents {
                    super::parents::copy_parents(&mut layer, source, src, &dest, &opts)?;
                    continue;
                }
                let matches = resolve_sources(source, src)?;
                if matches.is_empty() && !has_wildcards(src) {
                    return Err(format!("\"/{}\" not found: not found", clean(src)));
                }
                for m in matches {
                    if is_add && req.unpack && from_fs.is_none() {
                        if let Some(content) = self.host_file(source, &m)? {
                            let host = content.host_path().unwrap_or_default();
                            if let Some(reader) =
                                super::archive::open_archive(&host, || content.open())?
                            {
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
            for doc in &req.paths.inline_sources {
                let name = clean(&doc.path);
                let mut view = FsView::new();
                let e = bytes_entry(&name, doc.data.as_bytes(), 0o644, opts.created_time);
                view.apply([(e, Origin::Entry)]);
                copy_path(&mut layer, &view, &name, &dest, &opts)?;
            }
            Ok(())
        })();
        let (view, entries) = layer.finish();
        state.fs = match merge_onto {
            Some(mut below) => {
                below.apply(entries.iter().cloned());
                below
            }
            None => view,
        };
        result?;
        self.commit_layer(state, entries, msg)?;
        self.cache_record(state, pending, layers_before)
    }

    /// The file-backed content of a context file when the source is a host
    /// directory (opened later through the context root handle).
    fn host_file(&self, source: &dyn SourceFs, path: &str) -> Result<Option<Content>, String> {
        let resolved = source.resolve(path, true)?;
        match source.lstat(&resolved)? {
            Some(n) => match n.entry.kind {
                Kind::File {
                    content: c @ (Content::Path(_) | Content::InRoot { .. }),
                    ..
                } => Ok(Some(c)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }
}

/// The history entry (and canonical text) of a COPY/ADD.
fn copy_history(
    req: &CopyRequest,
    chown_spec: &Option<String>,
    srcs: &[String],
    dest_word: &str,
) -> String {
    let mut msg = String::from(if req.is_add { "ADD" } else { "COPY" });
    if req.parents {
        msg.push_str(" --parents");
    }
    if let Some(c) = chown_spec {
        msg.push_str(&format!(" --chown={c}"));
    }
    if let Some(c) = &req.chmod {
        msg.push_str(&format!(" --chmod={c}"));
    }
    for s in srcs {
        msg.push(' ');
        msg.push_str(s);
    }
    for d in &req.paths.inline_sources {
        msg.push_str(&format!(" <<{}", d.path));
    }
    msg.push_str(&format!(" {dest_word} # buildkit"));
    msg
}

/// A stage that has no filesystem yet (`FROM scratch` before any COPY,
/// ADD, RUN or WORKDIR that makes a directory) gives BuildKit's file
/// operation no input to read /etc/passwd or /etc/group from, so both
/// docker 20.10 and current BuildKit refuse a named owner there
/// ("invalid user index: -1"); ids and `root` need no lookup.
fn refuse_name_on_empty_root(state: &StageState, what: &str, spec: &str) -> Result<(), String> {
    if !state.layers.is_empty() {
        return Ok(());
    }
    if let (OwnerPart::Name(name), _) | (_, Some(OwnerPart::Name(name))) = chown_parts(spec) {
        return Err(format!(
            "{what} {spec}: invalid user index: -1 ({name:?} is a name, and the stage has no \
             files yet, so no /etc/passwd or /etc/group to look it up in; use numeric ids)"
        ));
    }
    Ok(())
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
}
