//! The layer cache inside the engine: one key per layer step, looked up
//! before any work and recorded only after the step succeeded.
//!
//! The keys come from each stage's [`KeyChain`] (see `docs/ARCHITECTURE.md`,
//! "Graph, cache and progress"); this file holds the lookup, the replay of
//! a hit (a layer blob already in the store plus its history entry) and
//! the record of a miss, with the progress events that go with them.
use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::config::add_history;
use super::engine::{lock, Engine, StageState};
use super::images::LayerBlob;
use crate::cache::{CacheKey, CacheResult, CachedLayer, InputsRecord, KeyBuilder};
use crate::digest::Digest;
use crate::graph::CancelToken;
use crate::image::Descriptor;
use crate::progress::{Event, StepId};

/// What a lookup decided for one layer step.
pub(super) enum Lookup<'e> {
    /// Replayed from the cache: nothing else to do.
    Hit,
    /// Run the step, then [`Engine::cache_record`] this.
    Miss(Pending<'e>),
}

/// A missed step's key, waiting for the step to succeed.
pub(super) struct Pending<'e> {
    identity: String,
    /// The key and inputs to record (None: nothing is recorded).
    key: Option<(CacheKey, InputsRecord)>,
    /// The step's key for the chain (None: the step has no key).
    chain_key: Option<CacheKey>,
    /// Holds the key in flight until the step is recorded or failed.
    _running: Option<Running<'e>>,
}

/// Keys of steps running now. A stage reaching a step whose key another
/// stage is running waits for it and then hits the cache: identical
/// steps are done once even when their stages run at the same time.
#[derive(Default)]
pub(super) struct InFlight {
    keys: Mutex<HashSet<String>>,
    done: Condvar,
}

/// One key of [`InFlight`], released when dropped.
pub(super) struct Running<'e> {
    set: &'e InFlight,
    key: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.set.keys).remove(&self.key);
        self.set.done.notify_all();
    }
}

impl InFlight {
    /// Claims `key`, first waiting while another stage runs it; None when
    /// the build is cancelled meanwhile.
    fn claim<'e>(&'e self, key: &str, cancel: &CancelToken) -> Option<Running<'e>> {
        let mut keys = lock(&self.keys);
        while keys.contains(key) {
            if cancel.is_cancelled() {
                return None;
            }
            keys = self
                .done
                .wait_timeout(keys, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        keys.insert(key.to_string());
        Some(Running {
            set: self,
            key: key.to_string(),
        })
    }
}

/// What the next step's `parent` input is after a step with key `key`
/// (None for a step the cache cannot key) produced `diff_id` (None: no
/// layer) on top of `parent`. The chain follows what each step really
/// produced, not only what went into it: a step run again with the cache
/// off (`--no-cache-filter`), an uncacheable step (`ADD URL`) or a
/// nondeterministic one that gives another layer changes the keys of
/// everything built on it, so nothing later is reused from the old result;
/// one that gives the same layer keeps them.
fn next_parent(parent: &CacheKey, key: Option<&CacheKey>, diff_id: Option<&Digest>) -> CacheKey {
    let diff = diff_id.map_or_else(|| "none".to_string(), Digest::to_string);
    let b = KeyBuilder::new("RESULT").input("layer", diff);
    let b = match key {
        Some(k) => b.input("step", k.to_string()),
        None => b.parent(parent),
    };
    b.build().0
}

impl Engine<'_> {
    /// The step identity the cache explains misses against. The Dockerfile
    /// is named relative to the context (or by its file name), so the same
    /// project checked out elsewhere, or a cache imported from another
    /// machine, still finds the earlier builds of its steps.
    fn identity(&self, state: &StageState, kind: &str) -> String {
        let path = std::path::Path::new(&self.opts.dockerfile_name);
        let name = match path.strip_prefix(&self.opts.context) {
            Ok(rel) => rel.to_string_lossy(),
            Err(_) => path
                .file_name()
                .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy()),
        };
        format!("{name}#{}#{}#{kind}", state.stage_name, state.position)
    }

    /// Looks `builder`'s key up (None: the step cannot be cached, e.g. it
    /// reads a URL). On a hit the layer and history are replayed onto
    /// `state`; nothing is extracted.
    pub(super) fn cache_lookup(
        &self,
        state: &mut StageState,
        id: StepId,
        kind: &str,
        created_by: &str,
        builder: Option<KeyBuilder>,
    ) -> Result<Lookup<'_>, String> {
        let identity = self.identity(state, kind);
        let Some(builder) = builder else {
            return Ok(Lookup::Miss(Pending {
                identity,
                key: None,
                chain_key: None,
                _running: None,
            }));
        };
        // What shapes the layer's files besides the step: clamped times.
        // Not the compression: a hit's blob is converted when it leaves the
        // store in another one, so store-only builds (plain tar) and
        // exporting builds (gzip) share their cache, as in BuildKit.
        let (key, inputs) = builder
            .input(
                "layer-options",
                format!("epoch={:?}", self.opts.source_date_epoch),
            )
            .build();
        let Some(index) = self.cache.as_ref() else {
            return Ok(Lookup::Miss(Pending {
                identity,
                key: None,
                chain_key: Some(key),
                _running: None,
            }));
        };
        let disabled = if !self.hooks.use_cache {
            Some("cache disabled (--no-cache)".to_string())
        } else if self
            .hooks
            .no_cache_filter
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&state.stage_name))
        {
            Some(format!(
                "cache disabled for stage {} (--no-cache-filter)",
                state.stage_name
            ))
        } else {
            None
        };
        let skip = disabled.is_some();
        let mut running = None;
        if !skip {
            running = Some(
                self.in_flight
                    .claim(&key.to_string(), &self.hooks.cancel)
                    .ok_or_else(|| "build cancelled".to_string())?,
            );
            if let Some(result) = index.lookup(&key).map_err(|e| e.to_string())? {
                index.touch(&identity, &key).map_err(|e| e.to_string())?;
                lock(&self.stats)
                    .keys
                    .push((state.stage_name.clone(), key.clone()));
                state.chain_keys.push(key.clone());
                self.replay(state, &result, created_by)?;
                let diff_id = result.layer.as_ref().map(|l| &l.diff_id);
                let next = next_parent(state.chain.key(), Some(&key), diff_id);
                state.chain.advance(next);
                self.hooks.reporter.event(&Event::StepCached {
                    id,
                    key: key.to_string(),
                });
                lock(&self.stats).cache_hits += 1;
                return Ok(Lookup::Hit);
            }
        }
        let mut why = index
            .explain_miss(&identity, &inputs)
            .map_err(|e| e.to_string())?;
        let reasons = match disabled {
            None => why.reasons(),
            Some(d) => {
                // Not looked up: an unchanged step is not "missing".
                why.result_missing = false;
                let changed = why.previous.is_some()
                    && !(why.changed.is_empty() && why.added.is_empty() && why.removed.is_empty());
                let mut r = vec![d];
                if changed {
                    r.extend(why.reasons());
                }
                r
            }
        };
        self.hooks.reporter.event(&Event::CacheMiss {
            id,
            reasons,
            changed: why.changed_inputs(),
        });
        lock(&self.stats).explanations.push(serde_json::json!({
            "step": identity,
            "instruction": created_by,
            "explanation": why.to_json(),
        }));
        Ok(Lookup::Miss(Pending {
            identity,
            chain_key: Some(key.clone()),
            key: Some((key, inputs)),
            _running: running,
        }))
    }

    /// Records a step that succeeded; `layers_before` is how many layers
    /// the stage had before it ran.
    pub(super) fn cache_record(
        &self,
        state: &mut StageState,
        pending: Pending<'_>,
        layers_before: usize,
    ) -> Result<(), String> {
        lock(&self.stats).cache_misses += 1;
        let layer = match state.layers.get(layers_before) {
            None => None,
            Some(l) => Some(CachedLayer {
                descriptor: Descriptor::new(&l.media_type, parse_digest(&l.digest)?, l.size),
                diff_id: parse_digest(&l.diff_id)?,
            }),
        };
        let diff_id = layer.as_ref().map(|l| &l.diff_id);
        let next = next_parent(state.chain.key(), pending.chain_key.as_ref(), diff_id);
        state.chain.advance(next);
        let (Some(index), Some((key, inputs))) = (self.cache.as_ref(), pending.key) else {
            return Ok(());
        };
        lock(&self.stats)
            .keys
            .push((state.stage_name.clone(), key.clone()));
        state.chain_keys.push(key);
        let result = CacheResult {
            layer,
            ..CacheResult::default()
        };
        index
            .record(&pending.identity, &inputs, &result)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn replay(
        &self,
        state: &mut StageState,
        result: &CacheResult,
        created_by: &str,
    ) -> Result<(), String> {
        let time = self.history_time();
        match &result.layer {
            None => add_history(&mut state.config, created_by.to_string(), true, time),
            Some(l) => {
                let blob = LayerBlob {
                    path: self.store.blob_path(&l.descriptor.digest),
                    digest: l.descriptor.digest.to_string(),
                    diff_id: l.diff_id.to_string(),
                    size: l.descriptor.size,
                    media_type: l.descriptor.media_type.clone(),
                };
                state.fs_pending.push(blob.path.clone());
                state.layers.push(blob);
                add_history(&mut state.config, created_by.to_string(), false, time);
            }
        }
        Ok(())
    }

    /// A new step id, with its StepStarted event.
    pub(super) fn step_started(
        &self,
        state: &StageState,
        text: &str,
        lines: Option<(usize, usize)>,
    ) -> (StepId, Instant) {
        let id = self.next_step_id();
        self.hooks.reporter.event(&Event::StepStarted {
            id,
            place: crate::progress::StepPlace {
                stage: state.stage_name.clone(),
                position: state.position,
                total: state.total,
            },
            text: text.to_string(),
            lines,
        });
        (id, Instant::now())
    }
}

fn parse_digest(d: &str) -> Result<Digest, String> {
    d.parse().map_err(|_| format!("bad digest {d:?}"))
}

/// A digest naming an image by content (config and layers), for keys of
/// stages built on it or copying from it.
pub(super) fn image_identity(config: &super::ImageConfig, layers: &[LayerBlob]) -> String {
    let mut text = serde_json::to_string(config).unwrap_or_default();
    for l in layers {
        text.push('\n');
        text.push_str(&l.digest);
    }
    super::images::sha256_digest(text.as_bytes())
}
