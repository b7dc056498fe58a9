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
    key: Option<(CacheKey, InputsRecord)>,
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

impl Engine<'_> {
    /// The step identity the cache explains misses against.
    fn identity(&self, state: &StageState, kind: &str) -> String {
        format!(
            "{}#{}#{}#{kind}",
            self.opts.dockerfile_name, state.stage_name, state.position
        )
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
                _running: None,
            }));
        };
        // What shapes the layer bytes besides the step: clamped times and
        // the compression.
        let (key, inputs) = builder
            .input(
                "layer-options",
                format!(
                    "epoch={:?} {:?}",
                    self.opts.source_date_epoch, self.opts.compression
                ),
            )
            .build();
        let Some(index) = self.cache.as_ref() else {
            state.chain.advance(key.clone());
            return Ok(Lookup::Miss(Pending {
                identity,
                key: None,
                _running: None,
            }));
        };
        let skip = !self.hooks.use_cache
            || self
                .hooks
                .no_cache_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&state.stage_name));
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
                self.replay(state, &result, created_by)?;
                state.chain.advance(key.clone());
                self.hooks.reporter.event(&Event::StepCached {
                    id,
                    key: key.to_string(),
                });
                lock(&self.stats).cache_hits += 1;
                return Ok(Lookup::Hit);
            }
        }
        let why = index
            .explain_miss(&identity, &inputs)
            .map_err(|e| e.to_string())?;
        let mut reasons = why.reasons();
        if skip {
            reasons.insert(0, "cache disabled for this step (--no-cache)".into());
        }
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
        state.chain.advance(key.clone());
        Ok(Lookup::Miss(Pending {
            identity,
            key: Some((key, inputs)),
            _running: running,
        }))
    }

    /// Records a step that succeeded; `layers_before` is how many layers
    /// the stage had before it ran.
    pub(super) fn cache_record(
        &self,
        state: &StageState,
        pending: Pending<'_>,
        layers_before: usize,
    ) -> Result<(), String> {
        lock(&self.stats).cache_misses += 1;
        let (Some(index), Some((key, inputs))) = (self.cache.as_ref(), pending.key) else {
            return Ok(());
        };
        lock(&self.stats).keys.push((state.stage_name.clone(), key));
        let layer = match state.layers.get(layers_before) {
            None => None,
            Some(l) => Some(CachedLayer {
                descriptor: Descriptor::new(&l.media_type, parse_digest(&l.digest)?, l.size),
                diff_id: parse_digest(&l.diff_id)?,
            }),
        };
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
