//! Stage orchestration: bases, ONBUILD triggers, on-demand dependencies.
//!
//! Expansion and ARG/ENV scoping are the instructions module's
//! ([`instructions::StageState`]); this file decides which stages run, on
//! which base, and feeds each one's commands to [`Engine::dispatch`].
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::config::{self, ImageConfig};
use super::copy::HostDir;
use super::fsview::FsView;
use super::images::{load_oci_layout, read_layer_entries, BaseImage, LayerBlob, LazyFs};
use super::{
    BuildError, BuildHooks, BuildOptions, BuildReport, BuiltImage, ImageResolver, NamedContext,
    Platform, RunExecutor,
};
use crate::cache::KeyChain;
use crate::context::IgnoreRules;
use crate::graph::{Graph, RunError, Scheduler};
use crate::instructions::{self, GlobalScope, Parsed, StageRef, Stages};
use crate::parser::Dockerfile;

impl StageState {
    /// Brings `fs` up to date with the base image's layers and the layers
    /// cache hits added.
    pub fn sync_fs(&mut self) -> Result<(), String> {
        if let Some(base) = self.fs_base.take() {
            self.fs = base.view()?;
        }
        for path in std::mem::take(&mut self.fs_pending) {
            self.fs.apply(read_layer_entries(&path)?);
        }
        Ok(())
    }
}

/// The state of a stage while and after it is built.
#[derive(Clone)]
pub(super) struct StageState {
    pub config: ImageConfig,
    pub fs: FsView,
    pub layers: Vec<LayerBlob>,
    /// Expansion state: the environment, ARGs, WORKDIR.
    pub scope: instructions::StageState,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// ONBUILD expressions written in this stage, for stages built FROM it.
    pub onbuild_written: Vec<String>,
    pub platform: Platform,
    /// How many layers came from the base image.
    pub base_layers: usize,
    /// The stage's cache key chain.
    pub chain: crate::cache::KeyChain,
    /// The step being dispatched was satisfied from the cache (so it gets
    /// no StepFinished event).
    pub cached_step: Option<crate::progress::StepId>,
    /// The keys of the layer steps this stage's image is made of, its
    /// base stages' included (`--cache-to mode=min` exports these).
    pub chain_keys: Vec<crate::cache::CacheKey>,
    /// Cached layers replayed onto `layers` but not yet onto `fs`: a hit
    /// reads nothing until a later step needs the file view.
    pub fs_pending: Vec<std::path::PathBuf>,
    /// The base image's view, not read yet; comes before `fs_pending`.
    pub fs_base: Option<LazyFs>,
    /// The stage's name (or index), for step identities and events.
    pub stage_name: String,
    /// The instruction being dispatched, 1-based.
    pub position: usize,
    /// Instructions in the stage.
    pub total: usize,
}

fn env_pairs(config: &ImageConfig) -> Vec<(String, String)> {
    config
        .config
        .env
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub(super) struct Engine<'a> {
    pub stages: Stages,
    pub global: GlobalScope,
    pub opts: &'a BuildOptions,
    pub store: &'a crate::store::Store,
    /// Taken in turn by stages resolving images; holding it while the
    /// image is pulled keeps two stages from pulling the same one.
    resolver: Mutex<&'a mut dyn ImageResolver>,
    pub runner: Option<&'a dyn RunExecutor>,
    /// Stages built, being built or failed.
    slots: Slots,
    images: Mutex<BTreeMap<String, ImageView>>,
    pub context: HostDir,
    pub hooks: BuildHooks<'a>,
    pub cache: Option<crate::cache::CacheIndex<'a>>,
    next_id: AtomicU64,
    pub stats: Mutex<Stats>,
    /// Cache keys of the steps running now.
    pub in_flight: super::cached::InFlight,
}

/// An image as a stage sees it: config, file view, layers.
pub(super) type ImageView = (ImageConfig, LazyFs, Vec<LayerBlob>);

/// A built stage, shared by the stages that use it; the lock is held only
/// to bring its file view up to date or to copy parts of it.
pub(super) type SharedStage = Arc<Mutex<StageState>>;

/// What the cache did, summed over every stage.
#[derive(Default)]
pub(super) struct Stats {
    pub explanations: Vec<serde_json::Value>,
    pub cache_hits: usize,
    pub cache_misses: usize,
    /// Keys of the steps that are in the cache now, with their stage.
    pub keys: Vec<(String, crate::cache::CacheKey)>,
}

enum Slot {
    Building,
    Done(SharedStage),
    Failed(BuildError),
}

/// Stage results with a condition variable, so a stage needing another
/// that some thread is building waits for it instead of building it twice.
#[derive(Default)]
struct Slots {
    map: Mutex<BTreeMap<usize, Slot>>,
    changed: Condvar,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn instruction_error(e: instructions::InstructionError) -> BuildError {
    if e.span.start_line == 0 {
        BuildError::general(e.kind.to_string())
    } else {
        BuildError::at(&e.span, e.kind.to_string())
    }
}

/// Builds the target stage of `df`.
///
/// New layers are written into `store`; `resolver` supplies images named
/// by FROM and `COPY --from`; `runner` executes RUN (None: RUN is refused
/// with a clear error).
pub fn build<'a>(
    df: &Dockerfile,
    opts: &'a BuildOptions,
    store: &'a crate::store::Store,
    resolver: &'a mut dyn ImageResolver,
    runner: Option<&'a dyn RunExecutor>,
) -> Result<BuiltImage, BuildError> {
    build_with(df, opts, store, resolver, runner, BuildHooks::none()).map(|(image, _)| image)
}

/// Builds the target stage of `df` as [`build`] does, with the layer cache
/// in the store and progress events as `hooks` says.
pub fn build_with<'a>(
    df: &Dockerfile,
    opts: &'a BuildOptions,
    store: &'a crate::store::Store,
    resolver: &'a mut dyn ImageResolver,
    runner: Option<&'a dyn RunExecutor>,
    hooks: BuildHooks<'a>,
) -> Result<(BuiltImage, BuildReport), BuildError> {
    let stages = instructions::parse_dockerfile(df).map_err(instruction_error)?;
    let target = stages
        .target(opts.target.as_deref())
        .map_err(instruction_error)?;
    let global = GlobalScope::new(
        &stages,
        &opts.build_args,
        &Platform::host(),
        Some(&opts.platform),
        opts.target.as_deref(),
    )
    .map_err(instruction_error)?;
    if !opts.context.is_dir() {
        return Err(BuildError::general(format!(
            "{}: the build context is not a directory",
            opts.context.display()
        )));
    }
    let ignore = match &opts.ignore {
        Some(rules) => rules.clone(),
        None => {
            let path = opts.context.join(".dockerignore");
            match std::fs::read(&path) {
                Ok(text) => IgnoreRules::parse(&path, &text)
                    .map_err(|e| BuildError::general(e.to_string()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
                Err(e) => return Err(BuildError::general(format!("{}: {e}", path.display()))),
            }
        }
    };
    let engine = Engine {
        stages,
        global,
        opts,
        store,
        resolver: Mutex::new(resolver),
        runner,
        slots: Slots::default(),
        images: Mutex::new(BTreeMap::new()),
        context: HostDir::new(&opts.context, ignore),
        cache: if hooks.cache {
            Some(
                crate::cache::CacheIndex::open(store)
                    .map_err(|e| BuildError::general(format!("build cache: {e}")))?,
            )
        } else {
            None
        },
        hooks,
        next_id: AtomicU64::new(0),
        stats: Mutex::new(Stats::default()),
        in_flight: Default::default(),
    };
    let shared = engine.schedule(target)?;
    if let Some(index) = &engine.cache {
        index
            .update_roots()
            .map_err(|e| BuildError::general(format!("build cache: {e}")))?;
    }
    // Only the config and layers leave the build: copying the whole
    // state would copy the stage's file view too (tens of MB for a big
    // COPY) while the engine still holds it.
    let (mut config, layers, base_layers, target_keys) = {
        let state = lock(&shared);
        (
            state.config.clone(),
            state.layers.clone(),
            state.base_layers,
            state.chain_keys.clone(),
        )
    };
    drop(shared);
    let stats = std::mem::take(&mut *lock(&engine.stats));
    drop(engine);
    let report = BuildReport {
        cache_hits: stats.cache_hits,
        cache_misses: stats.cache_misses,
        explanations: stats.explanations,
        keys: stats.keys.iter().map(|(_, k)| k.clone()).collect(),
        target_keys,
    };
    if !opts.labels.is_empty() {
        let labels = config.config.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &opts.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    config::omit_empty(&mut config);
    config.created = opts
        .source_date_epoch
        .map(|t| crate::image::format_rfc3339(t, 0));
    config.rootfs.diff_ids = layers
        .iter()
        .map(|l| {
            l.diff_id.parse().map_err(|_| {
                BuildError::general(format!("layer {}: bad diff_id {:?}", l.digest, l.diff_id))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((
        BuiltImage {
            config,
            layers,
            base_layers,
        },
        report,
    ))
}

impl Engine<'_> {
    pub(super) fn history_time(&self) -> Option<String> {
        self.opts
            .source_date_epoch
            .map(|t| crate::image::format_rfc3339(t, 0))
    }

    /// Builds the target and what it needs: the stages it reaches through
    /// FROM, `COPY --from` and `RUN --mount=from=` become a graph, and the
    /// scheduler builds independent ones at the same time. Dependencies the
    /// graph cannot see before the build (an expanded `--from=$X`, ONBUILD
    /// triggers) are built on demand by the stage that meets them.
    fn schedule(&self, target: usize) -> Result<SharedStage, BuildError> {
        self.check_every_from()?;
        let mut graph: Graph<usize> = Graph::new();
        let mut todo = vec![target];
        // Each stage needed: its node and the stages it surely needs.
        let mut nodes = BTreeMap::new();
        while let Some(i) = todo.pop() {
            if nodes.contains_key(&i) {
                continue;
            }
            let deps = self.static_deps(i);
            todo.extend(&deps);
            nodes.insert(i, (graph.add(format!("stage {i}"), i), deps));
        }
        for (node, deps) in nodes.values() {
            for d in deps {
                if let Some((dn, _)) = nodes.get(d) {
                    graph
                        .depend(*node, *dn)
                        .map_err(|e| BuildError::general(format!("internal: {e}")))?;
                }
            }
        }
        // What the progress display counts down: the instructions of the
        // stages the target surely needs (on-demand ones add to it).
        self.hooks
            .reporter
            .event(&crate::progress::Event::BuildStarted {
                target: self.opts.target.clone(),
                steps: nodes
                    .keys()
                    .filter_map(|i| self.stages.stages.get(*i))
                    .map(|s| s.commands.len())
                    .sum(),
            });
        let target_node = nodes
            .get(&target)
            .map(|(n, _)| *n)
            .ok_or_else(|| BuildError::general("internal: target stage missing from the graph"))?;
        let scheduler = Scheduler::new(self.hooks.jobs).with_cancel(self.hooks.cancel.clone());
        let result = scheduler.run(&graph, &[target_node], |_, stage| {
            self.build_stage(*stage).map(|_| ())
        });
        match result {
            Ok(_) => self.build_stage(target),
            Err(RunError::Failed { error, .. }) => Err(error),
            Err(RunError::Cancelled(reason)) => Err(BuildError::general(format!("build {reason}"))),
            Err(e) => Err(BuildError::general(e.to_string())),
        }
    }

    /// Every stage's FROM, the target's or not: its expansion, its
    /// `--platform` and, unless it names a stage, a named context or
    /// scratch, its image reference. docker 20.10 reads all of them before
    /// building anything, so `FROM Busybox` or `--platform=bogus` in a
    /// stage the target does not need still fails the build there.
    fn check_every_from(&self) -> Result<(), BuildError> {
        for (i, stage) in self.stages.stages.iter().enumerate() {
            if stage
                .name()
                .is_some_and(|n| self.opts.named_contexts.contains_key(n))
            {
                continue;
            }
            let from = self.global.resolve_from(stage).map_err(instruction_error)?;
            if from.base == "scratch" || self.opts.named_contexts.contains_key(&from.base) {
                continue;
            }
            if let StageRef::Image(name) = self.stages.resolve_base(&from.base, i) {
                crate::reference::Reference::parse(&name).map_err(|e| {
                    BuildError::at(&stage.span, format!("failed to parse stage name: {e}"))
                })?;
            }
        }
        Ok(())
    }

    /// Stages that stage `index` surely needs, as far as can be told
    /// before expanding anything: its FROM and literal `--from=` values.
    fn static_deps(&self, index: usize) -> Vec<usize> {
        let Some(stage) = self.stages.stages.get(index) else {
            return Vec::new();
        };
        let mut deps = Vec::new();
        if stage
            .name()
            .is_some_and(|n| self.opts.named_contexts.contains_key(n))
        {
            return deps;
        }
        if let Ok(from) = self.global.resolve_from(stage) {
            if let StageRef::Stage(j) = self.stages.resolve_base(&from.base, index) {
                deps.push(j);
            }
        }
        let mut names: Vec<String> = Vec::new();
        for cmd in &stage.commands {
            match &cmd.instruction {
                instructions::Instruction::Copy(c) => names.extend(c.from.clone()),
                instructions::Instruction::Run(r) => {
                    for spec in &r.mount_specs {
                        names.extend(spec.split(',').filter_map(|kv| {
                            let (k, v) = kv.split_once('=')?;
                            k.trim()
                                .eq_ignore_ascii_case("from")
                                .then(|| v.trim().to_string())
                        }));
                    }
                }
                _ => {}
            }
        }
        for name in names {
            if name.contains('$') || self.opts.named_contexts.contains_key(&name) {
                continue;
            }
            if let Ok(StageRef::Stage(j)) = self.stages.resolve_from(&name) {
                if j < index {
                    deps.push(j);
                }
            }
        }
        deps.sort_unstable();
        deps.dedup();
        deps
    }

    /// Builds stage `index` (and, on demand, what it depends on), or waits
    /// for the thread already building it.
    pub(super) fn build_stage(&self, index: usize) -> Result<SharedStage, BuildError> {
        {
            let mut map = lock(&self.slots.map);
            loop {
                match map.get(&index) {
                    Some(Slot::Done(s)) => return Ok(s.clone()),
                    Some(Slot::Failed(e)) => return Err(e.clone()),
                    // Stages only use stages defined before them, so
                    // waiting can never go round in a circle.
                    Some(Slot::Building) => {
                        if let Some(reason) = self.hooks.cancel.reason() {
                            return Err(BuildError::general(format!("build {reason}")));
                        }
                        map = self
                            .slots
                            .changed
                            .wait_timeout(map, std::time::Duration::from_millis(100))
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0);
                    }
                    None => {
                        map.insert(index, Slot::Building);
                        break;
                    }
                }
            }
        }
        let result = self.build_stage_inner(index);
        let mut map = lock(&self.slots.map);
        let out = match result {
            Ok(state) => {
                let shared = Arc::new(Mutex::new(state));
                map.insert(index, Slot::Done(shared.clone()));
                Ok(shared)
            }
            Err(e) => {
                map.insert(index, Slot::Failed(e.clone()));
                Err(e)
            }
        };
        drop(map);
        self.slots.changed.notify_all();
        out
    }

    fn build_stage_inner(&self, index: usize) -> Result<StageState, BuildError> {
        let stage = self
            .stages
            .stages
            .get(index)
            .cloned()
            .ok_or_else(|| BuildError::general(format!("internal: no stage {index}")))?;
        let at = |e: String| BuildError::at(&stage.span, e);
        let from = self
            .global
            .resolve_from(&stage)
            .map_err(instruction_error)?;
        let platform = from.platform.unwrap_or_else(|| self.opts.platform.clone());
        // A named build context with the stage's own name replaces the stage.
        if let Some(name) = stage.name() {
            if let Some(nc) = self.opts.named_contexts.get(name).cloned() {
                let (config, fs, layers) =
                    self.named_context_image(name, &nc, &platform).map_err(at)?;
                let chain = KeyChain::from_image(
                    &super::cached::image_identity(&config, &layers),
                    &platform.format(),
                );
                return Ok(self.image_stage(config, fs, layers, platform, chain));
            }
        }
        let stage_name = stage
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| index.to_string());
        let mut triggers: Vec<String> = Vec::new();
        let mut state = if from.base == "scratch" {
            let config = config::scratch(&platform);
            let chain = KeyChain::from_image("scratch", &platform.format());
            self.image_stage(
                config,
                LazyFs::default(),
                Vec::new(),
                platform.clone(),
                chain,
            )
        } else {
            match self.stages.resolve_base(&from.base, index) {
                StageRef::Stage(j) => {
                    let parent = self.build_stage(j)?;
                    let parent = lock(&parent);
                    let mut s = parent.clone();
                    s.scope = instructions::StageState::from_parent(&parent.scope);
                    triggers = std::mem::take(&mut s.onbuild_written);
                    s.config.config.on_build = None;
                    s.cmd_set = false;
                    s.chain = KeyChain::from_key(parent.chain.key().clone());
                    s.cached_step = None;
                    s
                }
                StageRef::Image(reference) => {
                    let (mut config, fs, layers) = self.image(&reference, &platform).map_err(at)?;
                    let chain = KeyChain::from_image(
                        &super::cached::image_identity(&config, &layers),
                        &platform.format(),
                    )
                    .named(&reference);
                    triggers = config.config.on_build.take().unwrap_or_default();
                    self.image_stage(config, fs, layers, platform.clone(), chain)
                }
            }
        };
        state.stage_name = stage_name;
        state.position = 0;
        state.total = stage.commands.len();
        for trigger in &triggers {
            let doc = crate::parser::parse_str(trigger)
                .map_err(|e| at(format!("ONBUILD trigger {trigger:?}: {}", e.kind)))?;
            for node in &doc.nodes {
                let mut cmd = match instructions::parse_instruction(node) {
                    Ok(Parsed::Command(c)) => c,
                    Ok(Parsed::From(_)) => {
                        return Err(at(format!(
                            "ONBUILD trigger {trigger:?}: FROM is not allowed"
                        )))
                    }
                    Err(e) => return Err(at(format!("ONBUILD trigger {trigger:?}: {}", e.kind))),
                };
                // Errors in a trigger point at the FROM that ran it.
                cmd.span = stage.span;
                self.dispatch(&mut state, index, &cmd)?;
            }
        }
        for cmd in &stage.commands {
            self.dispatch(&mut state, index, cmd)?;
        }
        Ok(state)
    }

    /// A stage starting from an image's config and filesystem.
    fn image_stage(
        &self,
        mut config: ImageConfig,
        fs: LazyFs,
        layers: Vec<LayerBlob>,
        platform: Platform,
        chain: KeyChain,
    ) -> StageState {
        config.created = None;
        config::as_buildkit_reads(&mut config);
        config.ensure_default_path();
        let scope = instructions::StageState::new(
            &self.global,
            env_pairs(&config),
            config.config.working_dir.as_deref().unwrap_or(""),
        );
        StageState {
            base_layers: layers.len(),
            config,
            fs: FsView::new(),
            fs_base: Some(fs),
            layers,
            scope,
            cmd_set: false,
            onbuild_written: Vec::new(),
            platform,
            chain,
            cached_step: None,
            chain_keys: Vec::new(),
            fs_pending: Vec::new(),
            stage_name: String::new(),
            position: 0,
            total: 0,
        }
    }

    fn named_context_image(
        &self,
        name: &str,
        nc: &NamedContext,
        platform: &Platform,
    ) -> Result<ImageView, String> {
        match nc {
            NamedContext::OciLayout { path, selector } => {
                let image = load_oci_layout(path, selector.as_deref(), &platform.architecture)?;
                Ok(view_of(&image))
            }
            NamedContext::Dir(dir) => Err(format!(
                "build context {name:?} ({}) is a directory: it can be used with COPY --from, not FROM",
                dir.display()
            )),
        }
    }

    /// An image used as a base or a `COPY --from` source, cached per
    /// reference; a named build context of that name wins.
    pub(super) fn image(&self, reference: &str, platform: &Platform) -> Result<ImageView, String> {
        if let Some(nc) = self.opts.named_contexts.get(reference).cloned() {
            return self.named_context_image(reference, &nc, platform);
        }
        let key = format!("{reference}@{}", platform.format());
        if let Some(s) = lock(&self.images).get(&key) {
            return Ok(s.clone());
        }
        let mut resolver = lock(&self.resolver);
        // Another stage may have resolved it while this one waited.
        if let Some(s) = lock(&self.images).get(&key) {
            return Ok(s.clone());
        }
        self.hooks.cancel.check().map_err(|e| e.to_string())?;
        let image = resolver.resolve(reference, platform)?;
        let v = view_of(&image);
        lock(&self.images).insert(key, v.clone());
        drop(resolver);
        Ok(v)
    }

    /// A host directory holding the filesystem `RUN --mount=from=` names:
    /// a named directory context as it is, else the stage's or image's
    /// layers flattened into the build's scratch directory.
    pub(super) fn mount_root(
        &self,
        state: &StageState,
        stage: usize,
        from: &str,
    ) -> Result<std::path::PathBuf, String> {
        if let Some(super::NamedContext::Dir(d)) = self.opts.named_contexts.get(from) {
            return Ok(d.clone());
        }
        let layers = if self.opts.named_contexts.contains_key(from) {
            self.image(from, &state.platform.clone())?.2
        } else {
            match self.stages.resolve_from(from).map_err(|k| k.to_string())? {
                StageRef::Stage(j) => {
                    if j >= stage {
                        return Err(format!(
                            "cannot mount stage {from:?}, it needs to be defined before the current stage"
                        ));
                    }
                    let built = self.build_stage(j).map_err(|e| e.message)?;
                    let layers = super::engine::lock(&built).layers.clone();
                    layers
                }
                StageRef::Image(reference) => self.image(&reference, &state.platform.clone())?.2,
            }
        };
        let key = layers
            .iter()
            .map(|l| l.digest.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let dir = self.opts.scratch.join(format!(
            "mount-{}",
            super::images::sha256_digest(key.as_bytes()).trim_start_matches("sha256:")
        ));
        if !dir.is_dir() {
            let tmp = super::images::spool_path(&self.opts.scratch, "mount-tmp-");
            std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            let mut report = crate::export::FlattenReport::default();
            for l in &layers {
                let f = std::fs::File::open(&l.path)
                    .map_err(|e| format!("{}: {e}", l.path.display()))?;
                let reader = crate::layer::decompressing_reader(std::io::BufReader::new(f))
                    .map_err(|e| format!("{}: {e}", l.path.display()))?;
                crate::export::apply_layer(&tmp, reader, &mut report)
                    .map_err(|e| format!("{}: {e}", l.digest))?;
            }
            if let Err(e) = std::fs::rename(&tmp, &dir) {
                // Another stage flattened the same layers meanwhile.
                let _ = std::fs::remove_dir_all(&tmp);
                if !dir.is_dir() {
                    return Err(format!("{}: {e}", dir.display()));
                }
            }
        }
        Ok(dir)
    }

    /// A new step id.
    pub(super) fn next_step_id(&self) -> crate::progress::StepId {
        crate::progress::StepId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

fn view_of(image: &BaseImage) -> ImageView {
    (
        image.config.clone(),
        LazyFs::new(&image.layers),
        image.layers.clone(),
    )
}
