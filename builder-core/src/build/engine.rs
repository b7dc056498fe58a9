//! Stage orchestration: bases, ONBUILD triggers, on-demand dependencies.
use std::collections::BTreeMap;

use super::config::{rfc3339, ImageConfig};
use super::copy::HostDir;
use super::fsview::FsView;
use super::images::{load_oci_layout, read_layer_entries, BaseImage, LayerBlob};
use super::stages::{plan, Plan};
use super::words::{expand_word, Vars};
use super::{
    BuildError, BuildOptions, BuiltImage, ImageResolver, NamedContext, Platform, RunExecutor,
};
use crate::context::IgnoreRules;
use crate::parser::{Args, Dockerfile, Node};

/// Parses the text of an ONBUILD trigger into instructions.
pub type TriggerParser<'a> = &'a dyn Fn(&str) -> Result<Vec<Node>, String>;

/// The state of a stage while and after it is built.
#[derive(Clone)]
pub(super) struct StageState {
    pub config: ImageConfig,
    pub fs: FsView,
    pub layers: Vec<LayerBlob>,
    /// Variables visible to expansion: the image's ENV and the ARGs in
    /// scope, later definitions replacing earlier ones.
    pub vars: Vec<(String, String)>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    /// ONBUILD expressions written in this stage, for stages built FROM it.
    pub onbuild_written: Vec<String>,
    pub platform: Platform,
}

impl StageState {
    pub fn set_var(&mut self, key: &str, value: &str) {
        if let Some(slot) = self.vars.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value.to_string();
        } else {
            self.vars.push((key.to_string(), value.to_string()));
        }
    }

    fn from_image(image: &BaseImage, platform: &Platform) -> Result<Self, String> {
        let mut fs = FsView::new();
        for l in &image.layers {
            fs.apply(read_layer_entries(&l.path)?);
        }
        let mut config = image.config.clone();
        config.created = None;
        Ok(StageState {
            config,
            fs,
            layers: image.layers.clone(),
            vars: Vec::new(),
            cmd_set: false,
            onbuild_written: Vec::new(),
            platform: platform.clone(),
        })
    }
}

pub(super) struct Engine<'a> {
    pub plan: Plan,
    pub opts: &'a BuildOptions,
    pub resolver: &'a mut dyn ImageResolver,
    pub runner: Option<&'a mut dyn RunExecutor>,
    pub parse_trigger: TriggerParser<'a>,
    pub global_args: Vec<(String, String)>,
    pub built: BTreeMap<usize, StageState>,
    pub in_progress: Vec<usize>,
    pub images: BTreeMap<String, StageState>,
    pub escape: char,
    pub context: HostDir,
}

/// Builds the target stage of `df`.
///
/// `resolver` supplies images named by FROM and `COPY --from`; `runner`
/// executes RUN (None: RUN is refused with a clear error);
/// `parse_trigger` parses ONBUILD trigger texts.
pub fn build<'a>(
    df: &Dockerfile,
    opts: &'a BuildOptions,
    resolver: &'a mut dyn ImageResolver,
    runner: Option<&'a mut dyn RunExecutor>,
    parse_trigger: TriggerParser<'a>,
) -> Result<BuiltImage, BuildError> {
    let plan = plan(df)?;
    let target = plan.target(opts.target.as_deref())?;
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
    if !opts.context.is_dir() {
        return Err(BuildError::general(format!(
            "{}: the build context is not a directory",
            opts.context.display()
        )));
    }
    let mut engine = Engine {
        global_args: Vec::new(),
        plan,
        opts,
        resolver,
        runner,
        parse_trigger,
        built: BTreeMap::new(),
        in_progress: Vec::new(),
        images: BTreeMap::new(),
        escape: df.escape,
        context: HostDir::new(&opts.context, ignore),
    };
    engine.init_global_args()?;
    engine.build_stage(target)?;
    let mut state = engine
        .built
        .remove(&target)
        .ok_or_else(|| BuildError::general("internal: target stage was not built"))?;
    if !opts.labels.is_empty() {
        let labels = state.config.config.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &opts.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    state.config.created = opts.source_date_epoch.map(rfc3339);
    state.config.rootfs.diff_ids = state.layers.iter().map(|l| l.diff_id.clone()).collect();
    Ok(BuiltImage {
        config: state.config,
        layers: state.layers,
    })
}

impl Engine<'_> {
    fn init_global_args(&mut self) -> Result<(), BuildError> {
        let p = &self.opts.platform;
        let host = Platform::host();
        let predefined = [
            ("TARGETPLATFORM", p.render()),
            ("TARGETOS", p.os.clone()),
            ("TARGETARCH", p.architecture.clone()),
            ("TARGETVARIANT", p.variant.clone()),
            ("BUILDPLATFORM", host.render()),
            ("BUILDOS", host.os.clone()),
            ("BUILDARCH", host.architecture.clone()),
            ("BUILDVARIANT", host.variant.clone()),
        ];
        for (k, v) in predefined {
            self.global_args.push((k.to_string(), v));
        }
        for node in self.plan.meta_args.clone() {
            let Args::NameValues(pairs) = &node.args else {
                continue;
            };
            for pair in pairs {
                let value = if let Some(v) = self.opts.build_args.get(&pair.key) {
                    Some(v.clone())
                } else if let Some(d) = &pair.value {
                    Some(
                        expand_word(d, &self.global_args, self.escape)
                            .map_err(|e| BuildError::at(&node.span, e))?,
                    )
                } else {
                    None
                };
                if let Some(v) = value {
                    self.global_args.retain(|(k, _)| k != &pair.key);
                    self.global_args.push((pair.key.clone(), v));
                }
            }
        }
        Ok(())
    }

    pub(super) fn history_time(&self) -> Option<String> {
        self.opts.source_date_epoch.map(rfc3339)
    }

    /// Builds stage `index` (and, on demand, what it depends on).
    pub(super) fn build_stage(&mut self, index: usize) -> Result<(), BuildError> {
        if self.built.contains_key(&index) {
            return Ok(());
        }
        if self.in_progress.contains(&index) {
            return Err(BuildError::general("circular dependency between stages"));
        }
        self.in_progress.push(index);
        let result = self.build_stage_inner(index);
        self.in_progress.retain(|i| *i != index);
        let state = result?;
        self.built.insert(index, state);
        Ok(())
    }

    fn build_stage_inner(&mut self, index: usize) -> Result<StageState, BuildError> {
        let def = self
            .plan
            .stages
            .get(index)
            .cloned()
            .ok_or_else(|| BuildError::general(format!("internal: no stage {index}")))?;
        let at = |e: String| BuildError::at(&def.from.span, e);
        let platform = match &def.platform {
            Some(p) => {
                let text = expand_word(p, &self.global_args, self.escape).map_err(at)?;
                Platform::parse(&text).map_err(at)?
            }
            None => self.opts.platform.clone(),
        };
        // A named build context with the stage's own name replaces the stage.
        if let Some(name) = &def.name {
            if let Some(nc) = self.opts.named_contexts.get(name).cloned() {
                return self.named_context_state(name, &nc, &platform).map_err(at);
            }
        }
        let base = expand_word(&def.base, &self.global_args, self.escape).map_err(at)?;
        if base.is_empty() {
            return Err(at(format!("base name ({}) should not be blank", def.base)));
        }
        let mut triggers: Vec<String> = Vec::new();
        let mut state = if base == "scratch" {
            StageState {
                config: ImageConfig::scratch(
                    &platform.os,
                    &platform.architecture,
                    &platform.variant,
                ),
                fs: FsView::new(),
                layers: Vec::new(),
                vars: Vec::new(),
                cmd_set: false,
                onbuild_written: Vec::new(),
                platform: platform.clone(),
            }
        } else if let Some(j) = self.stage_by_name(&base, index) {
            self.build_stage(j)?;
            let parent = self
                .built
                .get(&j)
                .ok_or_else(|| at("internal: base stage missing".into()))?;
            let mut s = parent.clone();
            triggers = std::mem::take(&mut s.onbuild_written);
            s.config.config.on_build = None;
            s.cmd_set = false;
            s
        } else {
            let mut s = self.image_state(&base, &platform).map_err(at)?;
            triggers = s.config.config.on_build.take().unwrap_or_default();
            s
        };
        state.config.ensure_path();
        if state.vars.is_empty() {
            for kv in state.config.config.env.clone().unwrap_or_default() {
                let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
                state.set_var(k, v);
            }
        }
        for trigger in &triggers {
            let nodes = (self.parse_trigger)(trigger)
                .map_err(|e| at(format!("ONBUILD trigger {trigger:?}: {e}")))?;
            for mut node in nodes {
                // Errors in a trigger point at the FROM that ran it.
                node.span = def.from.span;
                self.dispatch(&mut state, index, &node)?;
            }
        }
        for node in &def.nodes {
            self.dispatch(&mut state, index, node)?;
        }
        Ok(state)
    }

    /// An earlier stage named `name` (FROM refers to stages by name only).
    fn stage_by_name(&self, name: &str, current: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        self.plan
            .stages
            .iter()
            .take(current)
            .find(|s| s.name.as_deref() == Some(&lower))
            .map(|s| s.index)
    }

    fn named_context_state(
        &mut self,
        name: &str,
        nc: &NamedContext,
        platform: &Platform,
    ) -> Result<StageState, String> {
        match nc {
            NamedContext::OciLayout { path, selector } => {
                let image = load_oci_layout(path, selector.as_deref(), &platform.architecture)?;
                StageState::from_image(&image, platform)
            }
            NamedContext::Dir(dir) => Err(format!(
                "build context {name:?} ({}) is a directory: it can be used with COPY --from, not FROM",
                dir.display()
            )),
        }
    }

    /// The state of an image used as a base or a `COPY --from` source,
    /// cached per reference.
    pub(super) fn image_state(
        &mut self,
        reference: &str,
        platform: &Platform,
    ) -> Result<StageState, String> {
        if let Some(nc) = self.opts.named_contexts.get(reference).cloned() {
            return self.named_context_state(reference, &nc, platform);
        }
        let key = format!("{reference}@{}", platform.render());
        if let Some(s) = self.images.get(&key) {
            return Ok(s.clone());
        }
        let image = self.resolver.resolve(reference, platform)?;
        let state = StageState::from_image(&image, platform)?;
        self.images.insert(key, state.clone());
        Ok(state)
    }
}

impl Vars for StageState {
    fn get(&self, name: &str) -> Option<String> {
        Vars::get(&self.vars, name)
    }
}
