//! The build as a DAG of steps, and a scheduler that runs it.
//!
//! [`Graph`] holds generic nodes, each with a string key and its
//! dependencies. Adding a node whose key is already present returns the
//! existing node, so identical steps (same key) are done once. [`Graph::plan`]
//! keeps only what the targets reach, in dependency order, and refuses
//! cycles. [`Scheduler::run`] executes a plan on up to `jobs` threads,
//! running independent nodes at the same time; the first failure (or a
//! signal, see [`signal`]) cancels the rest through a [`CancelToken`].
//!
//! The scheduler never commits anything: a node's work returns a value, and
//! making that value durable (a layer in the store, a cache entry) is the
//! node's own job, done atomically before it returns. A cancelled build so
//! leaves only whole results behind.
mod cancel;
mod schedule;
pub mod signal;

use std::collections::HashMap;

pub use cancel::{CancelReason, CancelToken, Cancelled, HookGuard};
pub use schedule::{NodeCtx, Outputs, RunError, Scheduler};

/// A node of a [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(usize);

impl NodeId {
    /// The node's position in insertion order.
    pub fn index(self) -> usize {
        self.0
    }
}

/// What is wrong with a graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A node id that does not belong to this graph.
    #[error("no node {0} in the graph")]
    UnknownNode(usize),
    /// The dependencies loop; the keys along the loop.
    #[error("circular dependency: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

struct Node<T> {
    key: String,
    payload: T,
    deps: Vec<NodeId>,
}

/// A DAG of payloads `T` keyed by strings.
pub struct Graph<T> {
    nodes: Vec<Node<T>>,
    by_key: HashMap<String, NodeId>,
}

impl<T> Default for Graph<T> {
    fn default() -> Self {
        Graph {
            nodes: Vec::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<T> Graph<T> {
    /// An empty graph.
    pub fn new() -> Graph<T> {
        Graph::default()
    }

    /// Adds a node, or returns the node that already has `key` (dropping
    /// `payload`): two identical steps become one.
    pub fn add(&mut self, key: impl Into<String>, payload: T) -> NodeId {
        let key = key.into();
        if let Some(id) = self.by_key.get(&key) {
            return *id;
        }
        let id = NodeId(self.nodes.len());
        self.by_key.insert(key.clone(), id);
        self.nodes.push(Node {
            key,
            payload,
            deps: Vec::new(),
        });
        id
    }

    /// [`add`](Self::add), then makes the node depend on each of `deps`.
    pub fn add_with_deps(
        &mut self,
        key: impl Into<String>,
        payload: T,
        deps: &[NodeId],
    ) -> Result<NodeId, GraphError> {
        for d in deps {
            self.check(*d)?;
        }
        let id = self.add(key, payload);
        for d in deps {
            self.depend(id, *d)?;
        }
        Ok(id)
    }

    /// Makes `node` wait for `on`. Cycles are found by [`plan`](Self::plan).
    pub fn depend(&mut self, node: NodeId, on: NodeId) -> Result<(), GraphError> {
        self.check(on)?;
        let n = self
            .nodes
            .get_mut(node.0)
            .ok_or(GraphError::UnknownNode(node.0))?;
        if !n.deps.contains(&on) {
            n.deps.push(on);
        }
        Ok(())
    }

    fn check(&self, id: NodeId) -> Result<(), GraphError> {
        if id.0 < self.nodes.len() {
            Ok(())
        } else {
            Err(GraphError::UnknownNode(id.0))
        }
    }

    /// The node with `key`.
    pub fn find(&self, key: &str) -> Option<NodeId> {
        self.by_key.get(key).copied()
    }

    /// A node's payload.
    pub fn get(&self, id: NodeId) -> Option<&T> {
        self.nodes.get(id.0).map(|n| &n.payload)
    }

    /// A node's key.
    pub fn key(&self, id: NodeId) -> Option<&str> {
        self.nodes.get(id.0).map(|n| n.key.as_str())
    }

    /// A node's direct dependencies, in the order they were added.
    pub fn deps(&self, id: NodeId) -> &[NodeId] {
        self.nodes
            .get(id.0)
            .map(|n| n.deps.as_slice())
            .unwrap_or(&[])
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes `targets` need (themselves included), each after its
    /// dependencies; nodes nothing reaches are left out.
    pub fn plan(&self, targets: &[NodeId]) -> Result<Vec<NodeId>, GraphError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            None,
            Open,
            Done,
        }
        let mut mark = vec![Mark::None; self.nodes.len()];
        let mut order = Vec::new();
        for t in targets {
            self.check(*t)?;
            // Iterative DFS: (node, next dependency to look at).
            let mut stack: Vec<(NodeId, usize)> = vec![(*t, 0)];
            while let Some((n, i)) = stack.pop() {
                if i == 0 {
                    match mark.get(n.0).copied() {
                        Some(Mark::Done) => continue,
                        Some(Mark::Open) => {
                            return Err(self.cycle(&stack, n));
                        }
                        _ => {}
                    }
                    if let Some(m) = mark.get_mut(n.0) {
                        *m = Mark::Open;
                    }
                }
                match self.deps(n).get(i) {
                    Some(d) => {
                        stack.push((n, i + 1));
                        match mark.get(d.0).copied() {
                            Some(Mark::Done) => {}
                            Some(Mark::Open) => {
                                return Err(self.cycle(&stack, *d));
                            }
                            _ => stack.push((*d, 0)),
                        }
                    }
                    None => {
                        if let Some(m) = mark.get_mut(n.0) {
                            *m = Mark::Done;
                        }
                        order.push(n);
                    }
                }
            }
        }
        Ok(order)
    }

    fn cycle(&self, stack: &[(NodeId, usize)], back_to: NodeId) -> GraphError {
        let mut path: Vec<NodeId> = Vec::new();
        for (n, _) in stack {
            if path.last() != Some(n) {
                path.push(*n);
            }
        }
        let start = path.iter().position(|n| *n == back_to).unwrap_or(0);
        let mut keys: Vec<String> = path
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .filter_map(|n| self.key(*n).map(str::to_string))
            .collect();
        if let Some(k) = self.key(back_to) {
            keys.push(k.to_string());
        }
        GraphError::Cycle(keys)
    }
}

#[cfg(test)]
mod tests;
