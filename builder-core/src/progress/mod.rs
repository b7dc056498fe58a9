//! Build progress as events: every part of the library reports through a
//! [`Reporter`], and only the CLI decides how to show them (live terminal
//! view, CI lines, JSON, nothing).
//!
//! Events are owned values so a reporter may queue them for a renderer
//! thread; steps are named by a [`StepId`] the engine hands out, unique
//! within one build.
mod adapter;
mod output;

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

pub use adapter::BlobProgress;
pub use output::StepOutput;

/// A step's number within one build (BuildKit's `#N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StepId(pub u64);

/// Which output stream a log chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// Where a step is in its stage, for `[stage 2/5]` labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepPlace {
    /// The stage's name, or `stage-N` for an unnamed one; `internal` for
    /// work that belongs to no stage (pulls, context transfer).
    pub stage: String,
    /// 1-based position of the step in its stage (0: not a stage step).
    pub position: usize,
    /// Steps in the stage, FROM included.
    pub total: usize,
}

/// One changed input of a cache miss, as named by the cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangedInput {
    /// The input's name (`file:src/main.rs`, `arg:VERSION`, `base`, …).
    pub name: String,
    /// Its value in the closest earlier build (None: it was not an input).
    pub old: Option<String>,
    /// Its value now (None: it is no longer an input).
    pub new: Option<String>,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    /// Ran and produced a result (a layer, or a config change).
    Done,
    /// Stopped because another step failed or the build was interrupted.
    Cancelled,
}

/// Something that happened during a build.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The build began: the engine knows which stages it needs.
    BuildStarted {
        /// The target stage, if one was named.
        target: Option<String>,
        /// Steps the build will consider (after pruning to the target).
        steps: usize,
    },
    /// The build ended.
    BuildFinished {
        /// Wall time of the whole build.
        #[serde(serialize_with = "secs")]
        duration: Duration,
        /// Whether it succeeded.
        success: bool,
        /// The image's digest or name, on success.
        image: Option<String>,
    },
    /// A step began (cache lookup included).
    StepStarted {
        /// The step.
        id: StepId,
        /// Its place in its stage.
        place: StepPlace,
        /// The instruction as written (or what the step does).
        text: String,
        /// Dockerfile lines `(first, last)`, 1-based, when it has any.
        lines: Option<(usize, usize)>,
    },
    /// A step was satisfied from the cache.
    StepCached {
        /// The step.
        id: StepId,
        /// The cache key that hit.
        key: String,
    },
    /// Output of a step's process.
    StepLog {
        /// The step.
        id: StepId,
        /// Which stream.
        stream: Stream,
        /// The bytes, as written (not necessarily whole lines).
        #[serde(serialize_with = "lossy")]
        data: Vec<u8>,
    },
    /// Why a step's cache lookup missed.
    CacheMiss {
        /// The step.
        id: StepId,
        /// One line per reason, ready to show.
        reasons: Vec<String>,
        /// The inputs that differ from the closest earlier build; empty
        /// when there was no earlier build of this step.
        changed: Vec<ChangedInput>,
    },
    /// A step ended.
    StepFinished {
        /// The step.
        id: StepId,
        /// How long it ran.
        #[serde(serialize_with = "secs")]
        duration: Duration,
        /// How it ended.
        result: StepResult,
    },
    /// A step failed; the build stops.
    StepFailed {
        /// The step.
        id: StepId,
        /// The error, rendered.
        error: String,
        /// The last lines of its output, for context.
        last_lines: Vec<String>,
        /// How long it ran.
        #[serde(serialize_with = "secs")]
        duration: Duration,
    },
    /// Bytes of a blob moved (pull, push, cache import or export).
    Blob {
        /// The step the transfer belongs to.
        id: StepId,
        /// The blob's digest.
        digest: String,
        /// Bytes done.
        done: u64,
        /// Bytes in all (0: unknown).
        total: u64,
        /// Set once, when the blob is complete; says how it got there.
        outcome: Option<String>,
    },
    /// Something worth telling the user that does not stop the build.
    Warning {
        /// The step concerned, if any.
        id: Option<StepId>,
        /// The message.
        message: String,
    },
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn lossy<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}

/// Receives events, from several threads at once.
pub trait Reporter: Send + Sync {
    /// Called for every event, in order per step.
    fn event(&self, e: &Event);
}

/// Discards every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn event(&self, _e: &Event) {}
}

/// Keeps every event; for tests and for tools that render afterwards.
#[derive(Debug, Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// The events so far, in arrival order.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Reporter for Recorder {
    fn event(&self, e: &Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e.clone());
    }
}

impl<R: Reporter + ?Sized> Reporter for &R {
    fn event(&self, e: &Event) {
        (**self).event(e)
    }
}

impl<R: Reporter + ?Sized> Reporter for std::sync::Arc<R> {
    fn event(&self, e: &Event) {
        (**self).event(e)
    }
}

impl<R: Reporter + ?Sized> Reporter for Box<R> {
    fn event(&self, e: &Event) {
        (**self).event(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_tagged_json() {
        let e = Event::StepLog {
            id: StepId(3),
            stream: Stream::Stderr,
            data: b"a\xffb\n".to_vec(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            "{\"type\":\"step_log\",\"id\":3,\"stream\":\"stderr\",\"data\":\"a\u{fffd}b\\n\"}"
        );
        let e = Event::StepFinished {
            id: StepId(1),
            duration: Duration::from_millis(1500),
            result: StepResult::Done,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"step_finished","id":1,"duration":1.5,"result":"done"}"#
        );
    }

    #[test]
    fn recorder_keeps_order_and_null_drops() {
        let r = Recorder::new();
        let w = Event::Warning {
            id: None,
            message: "m".into(),
        };
        r.event(&w);
        let by_ref: &dyn Reporter = &&r;
        by_ref.event(&w);
        NullReporter.event(&w);
        assert_eq!(r.events().len(), 2);
    }
}
