//! Cooperative cancellation: a flag steps poll between units of work, plus
//! hooks that stop what cannot poll (a sandboxed process tree is killed by
//! the hook its RUN step registered).
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a build is being stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// A step failed; its key.
    Failed(String),
    /// SIGINT, SIGTERM…: the signal number.
    Signal(i32),
    /// The caller asked.
    Requested,
}

impl std::fmt::Display for CancelReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CancelReason::Failed(k) => write!(f, "step {k} failed"),
            CancelReason::Signal(2) => write!(f, "interrupted"),
            CancelReason::Signal(15) => write!(f, "terminated"),
            CancelReason::Signal(n) => write!(f, "signal {n}"),
            CancelReason::Requested => write!(f, "cancelled"),
        }
    }
}

/// What a step returns when it notices the build was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cancelled: {0}")]
pub struct Cancelled(pub CancelReason);

type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    reason: Mutex<Option<CancelReason>>,
    hooks: Mutex<Vec<(u64, Hook)>>,
    next_hook: AtomicU64,
}

/// A shared "stop now" flag with hooks. Clones share the same state.
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("reason", &self.reason())
            .finish()
    }
}

impl CancelToken {
    /// A token nobody has cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Whether the build is being stopped; cheap enough for inner loops.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// `Err` once cancelled, for `?` in step code.
    pub fn check(&self) -> Result<(), Cancelled> {
        match self.reason() {
            Some(r) if self.is_cancelled() => Err(Cancelled(r)),
            _ => Ok(()),
        }
    }

    /// Why it was cancelled (the first reason given).
    pub fn reason(&self) -> Option<CancelReason> {
        self.inner
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Cancels and runs every registered hook; returns false (and does
    /// nothing) if it was already cancelled.
    pub fn cancel(&self, reason: CancelReason) -> bool {
        {
            let mut r = self.inner.reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_some() {
                return false;
            }
            *r = Some(reason);
            self.inner.flag.store(true, Ordering::Release);
        }
        let hooks: Vec<Hook> = self
            .inner
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, h)| h.clone())
            .collect();
        for h in hooks {
            h();
        }
        true
    }

    /// Runs `hook` when the token is cancelled (at once if it already is)
    /// until the returned guard is dropped. Hooks run on the cancelling
    /// thread, possibly the signal watcher: keep them short (send a signal
    /// to a process group, close a pipe).
    pub fn on_cancel(&self, hook: impl Fn() + Send + Sync + 'static) -> HookGuard {
        let id = self.inner.next_hook.fetch_add(1, Ordering::Relaxed);
        let hook: Hook = Arc::new(hook);
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, hook.clone()));
        if self.is_cancelled() {
            hook();
        }
        HookGuard {
            token: self.clone(),
            id,
        }
    }
}

/// Unregisters a hook when dropped.
pub struct HookGuard {
    token: CancelToken,
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        self.token
            .inner
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| *i != self.id);
    }
}
