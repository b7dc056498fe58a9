//! Running a graph: a fixed pool of scoped threads takes ready nodes from
//! a shared queue; a node becomes ready when all its dependencies are done.
//! On the first failure the token is cancelled, no new node starts, running
//! ones are told to stop, and `run` returns that first error once every
//! thread has come back.
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, OnceLock};

use super::cancel::{CancelReason, CancelToken};
use super::{Graph, GraphError, NodeId};

/// Runs graphs with bounded parallelism.
#[derive(Debug, Clone)]
pub struct Scheduler {
    jobs: usize,
    cancel: CancelToken,
}

/// Why [`Scheduler::run`] did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    /// The graph is malformed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A node failed; the first failure wins, later ones (usually reactions
    /// to the cancellation) are dropped.
    #[error("{key}: {error}")]
    Failed {
        /// The node.
        node: NodeId,
        /// Its key.
        key: String,
        /// What its work returned.
        error: E,
    },
    /// A node's work panicked.
    #[error("{key}: internal error (panic): {message}")]
    Panicked {
        /// The node.
        node: NodeId,
        /// Its key.
        key: String,
        /// The panic message, when it was a string.
        message: String,
    },
    /// The token was cancelled from outside (a signal, the caller).
    #[error("build {0}")]
    Cancelled(CancelReason),
}

/// What a node's work sees: its id, its dependencies' outputs and the
/// cancellation token to poll.
pub struct NodeCtx<'a, R> {
    id: NodeId,
    deps: &'a [NodeId],
    outputs: &'a [OnceLock<R>],
    cancel: &'a CancelToken,
}

impl<'a, R> NodeCtx<'a, R> {
    /// The node being run.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The output of dependency `dep` (None if `dep` is not one).
    pub fn dep(&self, dep: NodeId) -> Option<&'a R> {
        if !self.deps.contains(&dep) {
            return None;
        }
        self.outputs.get(dep.0).and_then(OnceLock::get)
    }

    /// Every dependency's output, in the order the edges were added.
    pub fn deps(&self) -> impl Iterator<Item = (NodeId, &'a R)> + '_ {
        self.deps
            .iter()
            .filter_map(|d| self.outputs.get(d.0)?.get().map(|r| (*d, r)))
    }

    /// The build's cancellation token.
    pub fn cancel(&self) -> &'a CancelToken {
        self.cancel
    }
}

/// The outputs of a finished run, by node.
#[derive(Debug)]
pub struct Outputs<R> {
    slots: Vec<Option<R>>,
}

impl<R> Outputs<R> {
    /// A node's output; None for nodes the run did not need.
    pub fn get(&self, id: NodeId) -> Option<&R> {
        self.slots.get(id.0).and_then(Option::as_ref)
    }

    /// Moves a node's output out.
    pub fn take(&mut self, id: NodeId) -> Option<R> {
        self.slots.get_mut(id.0).and_then(Option::take)
    }

    /// How many nodes ran.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no node ran.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct State<E> {
    ready: VecDeque<NodeId>,
    waiting: Vec<usize>,
    running: usize,
    done: usize,
    failure: Option<RunError<E>>,
}

impl Scheduler {
    /// A scheduler running up to `jobs` nodes at once; 0 means one per core.
    pub fn new(jobs: usize) -> Scheduler {
        let jobs = if jobs == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            jobs
        };
        Scheduler {
            jobs,
            cancel: CancelToken::new(),
        }
    }

    /// Uses `token` (e.g. one wired to signals by [`super::signal`]);
    /// a token is for one build: once cancelled it stays cancelled.
    pub fn with_cancel(mut self, token: CancelToken) -> Scheduler {
        self.cancel = token;
        self
    }

    /// The token this scheduler's runs obey and cancel.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// The parallelism limit.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// Runs everything `targets` need: `work` is called once per node, on
    /// a worker thread, after all of the node's dependencies succeeded.
    pub fn run<T, R, E, F>(
        &self,
        graph: &Graph<T>,
        targets: &[NodeId],
        work: F,
    ) -> Result<Outputs<R>, RunError<E>>
    where
        T: Sync,
        R: Send + Sync,
        E: Send,
        F: Fn(&NodeCtx<'_, R>, &T) -> Result<R, E> + Sync,
    {
        let plan = graph.plan(targets)?;
        if let Some(r) = self.cancel.reason() {
            return Err(RunError::Cancelled(r));
        }
        let n = graph.len();
        let mut in_plan = vec![false; n];
        for id in &plan {
            if let Some(f) = in_plan.get_mut(id.0) {
                *f = true;
            }
        }
        let mut dependents: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        let mut waiting = vec![0usize; n];
        for id in &plan {
            for d in graph.deps(*id) {
                if let Some(list) = dependents.get_mut(d.0) {
                    list.push(*id);
                }
                if let Some(w) = waiting.get_mut(id.0) {
                    *w += 1;
                }
            }
        }
        let ready: VecDeque<NodeId> = plan
            .iter()
            .copied()
            .filter(|id| waiting.get(id.0) == Some(&0))
            .collect();
        let outputs: Vec<OnceLock<R>> = (0..n).map(|_| OnceLock::new()).collect();
        let state = Mutex::new(State {
            ready,
            waiting,
            running: 0,
            done: 0,
            failure: None,
        });
        let wake = Condvar::new();
        let total = plan.len();
        let workers = self.jobs.clamp(1, total.max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let id = {
                        let mut st = lock(&state);
                        loop {
                            let stop = st.failure.is_some() || self.cancel.is_cancelled();
                            if st.done == total || (stop && st.running == 0) {
                                wake.notify_all();
                                return;
                            }
                            if !stop {
                                if let Some(id) = st.ready.pop_front() {
                                    st.running += 1;
                                    break id;
                                }
                            }
                            // Time-bounded so an outside cancel is noticed
                            // without a hook into this run's condvar.
                            st = wake
                                .wait_timeout(st, std::time::Duration::from_millis(50))
                                .map(|(g, _)| g)
                                .unwrap_or_else(|p| p.into_inner().0);
                        }
                    };
                    let ctx = NodeCtx {
                        id,
                        deps: graph.deps(id),
                        outputs: &outputs,
                        cancel: &self.cancel,
                    };
                    let result = match graph.get(id) {
                        Some(payload) => catch_unwind(AssertUnwindSafe(|| work(&ctx, payload))),
                        None => Err(Box::new("node missing from its graph")
                            as Box<dyn std::any::Any + Send>),
                    };
                    let key = graph.key(id).unwrap_or("").to_string();
                    let mut st = lock(&state);
                    st.running -= 1;
                    match result {
                        Ok(Ok(out)) => {
                            let _ = outputs.get(id.0).map(|slot| slot.set(out));
                            st.done += 1;
                            for d in dependents.get(id.0).map(Vec::as_slice).unwrap_or(&[]) {
                                if let Some(w) = st.waiting.get_mut(d.0) {
                                    *w -= 1;
                                    if *w == 0 {
                                        st.ready.push_back(*d);
                                    }
                                }
                            }
                        }
                        Ok(Err(error)) => {
                            // An error after an outside cancel is the step
                            // reacting to it, not the cause.
                            if st.failure.is_none() && !self.cancel.is_cancelled() {
                                st.failure = Some(RunError::Failed {
                                    node: id,
                                    key: key.clone(),
                                    error,
                                });
                            }
                            drop(st);
                            self.cancel.cancel(CancelReason::Failed(key));
                            wake.notify_all();
                            continue;
                        }
                        Err(panic) => {
                            let message = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            if st.failure.is_none() {
                                st.failure = Some(RunError::Panicked {
                                    node: id,
                                    key: key.clone(),
                                    message,
                                });
                            }
                            drop(st);
                            self.cancel.cancel(CancelReason::Failed(key));
                            wake.notify_all();
                            continue;
                        }
                    }
                    drop(st);
                    wake.notify_all();
                });
            }
        });
        let st = state.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = st.failure {
            return Err(f);
        }
        if st.done < total {
            return Err(RunError::Cancelled(
                self.cancel.reason().unwrap_or(CancelReason::Requested),
            ));
        }
        Ok(Outputs {
            slots: outputs.into_iter().map(OnceLock::into_inner).collect(),
        })
    }
}
