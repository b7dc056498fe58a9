//! Cache keys of the layer steps: what each RUN, COPY and ADD reads,
//! named so a miss can say which input changed.
use super::cached::image_identity;
use super::config::working_dir;
use super::copy::resolve_sources;
use super::engine::{Engine, StageState};
use super::fsview::clean;
use super::instr::CopyRequest;
use crate::cache::KeyBuilder;
use crate::instructions::{self, StageRef};

impl Engine<'_> {
    /// The key of a RUN: the chain synced to what the step sees, plus its
    /// mounts, network and inline script. None when a mount reads a
    /// directory the cache cannot vouch for.
    pub(super) fn run_key(
        &self,
        state: &mut StageState,
        run: &instructions::Run,
        mounts: &[instructions::Mount],
        mount_roots: &[Option<std::path::PathBuf>],
        key_env: &[(String, String)],
        invocation: &instructions::RunInvocation,
    ) -> Option<KeyBuilder> {
        let config_env = state.config.config.env.clone().unwrap_or_default();
        for (k, v) in key_env {
            if config_env.iter().any(|kv| *kv == format!("{k}={v}")) {
                state.chain.set_env(k, v);
            } else {
                state.chain.set_arg(k, v);
            }
        }
        state.chain.set_workdir(&working_dir(&state.config));
        state
            .chain
            .set_user(state.config.config.user.as_deref().unwrap_or(""));
        // No `set_shell`: the key's text is the argv, which for the shell
        // form already starts with the shell; an exec-form RUN does not
        // use SHELL, so (as in BuildKit) changing SHELL leaves it cached.
        let mut b = state
            .chain
            .run(&format!(
                "RUN {}",
                serde_json::to_string(&invocation.args).unwrap_or_default()
            ))
            .input("network", format!("{:?}", run.network));
        for (m, root) in mounts.iter().zip(mount_roots) {
            b = b.input(format!("mount:{}", m.target), format!("{m:?}"));
            if let Some(dir) = root {
                if matches!(
                    self.opts.named_contexts.get(&m.from),
                    Some(super::NamedContext::Dir(_))
                ) {
                    return None;
                }
                let name = dir.file_name()?.to_string_lossy().into_owned();
                b = b.from_source(&m.from, name);
            } else if m.kind == instructions::MountType::Bind {
                // Only what the mount shows (`source=`), as BuildKit keys it:
                // `--mount=type=bind,source=go.sum` does not depend on the
                // rest of the context.
                let listing = self.hooks.listing?;
                b = match context_input(b.clone(), listing, &clean(&m.source)) {
                    Some(b) => b,
                    // A symlink or a path the listing lacks: the whole context.
                    None => b.input(
                        format!("context:{}", m.target),
                        listing.root_digest.as_ref()?.to_string(),
                    ),
                };
            }
        }
        if let Some(script) = &invocation.script {
            b = b.input("script", format!("{script:?}"));
        }
        // Only when given, so builds without them keep their keys.
        if !self.opts.extra_hosts.is_empty() {
            b = b.input("add-host", format!("{:?}", self.opts.extra_hosts));
        }
        if let Some(size) = self.opts.shm_size {
            b = b.input("shm-size", size.to_string());
        }
        Some(b)
    }

    /// The key of a COPY/ADD: its sources' content digests (context
    /// listing), or the key/identity of its `--from` source. None when a
    /// source is something the cache cannot vouch for (a URL, a named
    /// directory context, a path the listing lacks).
    pub(super) fn copy_key(
        &self,
        state: &mut StageState,
        req: &CopyRequest,
        srcs: &[String],
        chown: &Option<(u32, u32)>,
        msg: &str,
    ) -> Result<Option<KeyBuilder>, String> {
        let kind = if req.is_add { "ADD" } else { "COPY" };
        state.chain.set_workdir(&working_dir(&state.config));
        let canonical = format!(
            "{msg} from={:?} exclude={:?} checksum={:?} unpack={}",
            req.from, req.exclude, req.checksum, req.unpack
        );
        let mut b = state.chain.copy(kind, &canonical);
        if req.link && req.chmod.is_none() {
            // Not in the history text, yet the layer differs.
            b = b.input("link", "true");
        }
        if let (Some(spec), Some(c)) = (&req.chown, chown) {
            // By spec, so a miss says "owner lookup app changed" when the
            // stage's /etc/passwd maps the name to another id.
            b = b.input(format!("chown:{spec}"), format!("{}:{}", c.0, c.1));
        }
        for doc in &req.paths.inline_sources {
            b = b.input(
                format!("heredoc:{}", doc.path),
                super::images::sha256_digest(doc.data.as_bytes()),
            );
        }
        if let Some(f) = &req.from {
            let p = state.platform.clone();
            let key = match self.opts.named_contexts.get(f) {
                Some(super::NamedContext::Dir(_)) => return Ok(None),
                Some(_) => {
                    let (c, _, l) = self.image(f, &p)?;
                    image_identity(&c, &l)
                }
                None => match self.stages.resolve_from(f).map_err(|k| k.to_string())? {
                    StageRef::Stage(j) => {
                        let built = self.build_stage(j).map_err(|e| e.message)?;
                        let key = super::engine::lock(&built).chain.key().to_string();
                        key
                    }
                    StageRef::Image(reference) => {
                        let (c, _, l) = self.image(&reference, &p)?;
                        image_identity(&c, &l)
                    }
                },
            };
            return Ok(Some(b.from_source(f, key)));
        }
        let Some(listing) = self.hooks.listing else {
            return Ok(None);
        };
        for src in srcs {
            if src.starts_with("http://") || src.starts_with("https://") {
                return Ok(None);
            }
            // `--parents` walks its whole root with the pattern as a filter
            // (`**` included), so the key covers that root.
            let pattern = match (req.parents, src.split_once("/./")) {
                (true, Some((r, _))) => r.to_string(),
                (true, None) => String::new(),
                _ => src.clone(),
            };
            for m in resolve_sources(&self.context, &pattern)? {
                match context_input(b, listing, &clean(&m)) {
                    Some(next) => b = next,
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(b))
    }
}

/// The context path `rel` (empty or `.`: the root) as a `file:REL` input
/// with its content digest, and for a directory the digest of each file
/// below it as the detail a miss is explained with. None when the listing
/// cannot vouch for it (missing, a symlink, no digest).
fn context_input(
    b: KeyBuilder,
    listing: &crate::context::ContextListing,
    rel: &str,
) -> Option<KeyBuilder> {
    let root = rel.is_empty() || rel == ".";
    let (digest, below) = if root {
        (
            listing.root_digest.as_ref(),
            listing.subtree(std::path::Path::new("")),
        )
    } else {
        let node = listing.get(&crate::bytename::to_path(rel))?;
        if matches!(node.kind, crate::context::NodeKind::Symlink { .. }) {
            return None;
        }
        (
            node.digest.as_ref(),
            listing.subtree(&crate::bytename::to_path(rel)),
        )
    };
    let mut b = b.file(rel, digest?.to_string());
    if below.len() > 1 || root {
        let files = below
            .iter()
            .filter(|n| n.kind != crate::context::NodeKind::Dir)
            .filter_map(|n| {
                let d = n.digest.as_ref()?;
                // Raw bytes shown as `\xNN`: as U+FFFD, every such name
                // of a directory would share one line.
                Some((
                    format!("file:{}", crate::bytename::show_path(&n.path)),
                    d.to_string(),
                ))
            })
            .collect();
        b = b.detail(&format!("file:{rel}"), files);
    }
    Some(b)
}
