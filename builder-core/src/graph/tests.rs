use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// Four independent leaves merged by one node; an unused node on the side.
fn diamond() -> (Graph<&'static str>, Vec<NodeId>, NodeId, NodeId) {
    let mut g = Graph::new();
    let leaves: Vec<NodeId> = ["a", "b", "c", "d"].iter().map(|k| g.add(*k, *k)).collect();
    let unused = g.add("unused", "unused");
    let top = g.add_with_deps("top", "top", &leaves).unwrap();
    (g, leaves, top, unused)
}

#[test]
fn plan_keeps_only_what_the_target_reaches_in_dependency_order() {
    let (g, leaves, top, unused) = diamond();
    let plan = g.plan(&[top]).unwrap();
    assert_eq!(plan.len(), 5);
    assert!(!plan.contains(&unused));
    assert_eq!(plan.last(), Some(&top));
    for l in &leaves {
        assert!(plan.contains(l));
    }
    assert_eq!(g.plan(&[leaves[1]]).unwrap(), vec![leaves[1]]);
}

#[test]
fn identical_keys_are_one_node() {
    let mut g = Graph::new();
    let a = g.add("same", 1);
    let b = g.add("same", 2);
    assert_eq!(a, b);
    assert_eq!(g.len(), 1);
    assert_eq!(g.get(a), Some(&1));
    let c = g.add_with_deps("user1", 3, &[a]).unwrap();
    let d = g.add_with_deps("user2", 4, &[b]).unwrap();
    let top = g.add_with_deps("top", 5, &[c, d]).unwrap();
    let runs = AtomicUsize::new(0);
    let out = Scheduler::new(4)
        .run(&g, &[top], |_, v| {
            if *v == 1 {
                runs.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, String>(*v)
        })
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the shared step ran once");
    assert_eq!(out.len(), 4);
}

#[test]
fn cycles_and_unknown_nodes_are_refused() {
    let mut g = Graph::new();
    let a = g.add("a", ());
    let b = g.add_with_deps("b", (), &[a]).unwrap();
    g.depend(a, b).unwrap();
    let err = g.plan(&[b]).unwrap_err();
    assert!(
        matches!(&err, GraphError::Cycle(k) if k.contains(&"a".to_string())),
        "{err}"
    );
    assert!(err.to_string().contains("circular dependency"), "{err}");
    assert_eq!(g.depend(a, NodeId(9)), Err(GraphError::UnknownNode(9)));
    let r = Scheduler::new(2).run(&g, &[b], |_, _| Ok::<_, String>(()));
    assert!(matches!(r, Err(RunError::Graph(GraphError::Cycle(_)))));
}

#[test]
fn independent_nodes_overlap_and_dependents_see_outputs() {
    let (g, _, top, unused) = diamond();
    let spans: Mutex<Vec<(&str, Instant, Instant)>> = Mutex::new(Vec::new());
    // The four leaves wait for each other: this only returns if they all
    // run at the same time (a sequential scheduler would deadlock, so the
    // barrier has a timeout fallback that the assertion below catches).
    let meet = Barrier::new(4);
    let met = AtomicUsize::new(0);
    let out = Scheduler::new(4)
        .run(&g, &[top], |ctx, name| {
            let start = Instant::now();
            if *name != "top" {
                meet.wait();
                met.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
            let sum: usize = ctx.deps().map(|(_, v)| *v).sum();
            spans.lock().unwrap().push((name, start, Instant::now()));
            Ok::<_, String>(sum + 1)
        })
        .unwrap();
    assert_eq!(met.load(Ordering::SeqCst), 4);
    assert_eq!(out.get(top), Some(&5), "top saw the four leaves' outputs");
    assert_eq!(out.get(unused), None, "the unused node never ran");
    let spans = spans.into_inner().unwrap();
    assert_eq!(spans.len(), 5);
    let leaves: Vec<_> = spans.iter().filter(|s| s.0 != "top").collect();
    let latest_start = leaves.iter().map(|s| s.1).max().unwrap();
    let earliest_end = leaves.iter().map(|s| s.2).min().unwrap();
    assert!(
        latest_start < earliest_end,
        "all four leaves were running at once"
    );
    let top_span = spans.iter().find(|s| s.0 == "top").unwrap();
    assert!(
        leaves.iter().all(|l| l.2 <= top_span.1),
        "top ran after all leaves"
    );
}

#[test]
fn jobs_bound_the_parallelism() {
    let (g, _, top, _) = diamond();
    let now = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    Scheduler::new(2)
        .run(&g, &[top], |_, _| {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            now.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })
        .unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

#[test]
fn a_failure_cancels_the_others_and_is_the_error_returned() {
    let mut g = Graph::new();
    let slow1 = g.add("slow1", "slow");
    let slow2 = g.add("slow2", "slow");
    let bad = g.add("bad", "bad");
    let after = g.add_with_deps("after", "after", &[bad]).unwrap();
    let top = g
        .add_with_deps("top", "top", &[slow1, slow2, after])
        .unwrap();
    let killed = Arc::new(AtomicUsize::new(0));
    let ran_after = AtomicUsize::new(0);
    let sched = Scheduler::new(3);
    let started = Barrier::new(3);
    let err = sched
        .run(&g, &[top], |ctx, kind| match *kind {
            "slow" => {
                // What a RUN step does: a kill hook for its process tree,
                // and polling between units of work.
                let k = killed.clone();
                let _hook = ctx.cancel().on_cancel(move || {
                    k.fetch_add(1, Ordering::SeqCst);
                });
                started.wait();
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    ctx.cancel().check().map_err(|c| c.to_string())?;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Ok(())
            }
            "bad" => {
                started.wait();
                Err("exit code 1".to_string())
            }
            _ => {
                ran_after.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .unwrap_err();
    match err {
        RunError::Failed { node, key, error } => {
            assert_eq!(node, bad);
            assert_eq!(key, "bad");
            assert_eq!(error, "exit code 1");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(killed.load(Ordering::SeqCst), 2, "both kill hooks ran");
    assert_eq!(ran_after.load(Ordering::SeqCst), 0, "nothing started after");
    assert_eq!(
        sched.cancel_token().reason(),
        Some(CancelReason::Failed("bad".into()))
    );
}

#[test]
fn an_outside_cancel_stops_the_run_with_its_reason() {
    let (g, _, top, _) = diamond();
    let token = CancelToken::new();
    let sched = Scheduler::new(2).with_cancel(token.clone());
    let err = sched
        .run(&g, &[top], |ctx, _| {
            token.cancel(CancelReason::Signal(2));
            ctx.cancel().check().map_err(|c| c.to_string())?;
            Ok::<_, String>(())
        })
        .unwrap_err();
    assert!(
        matches!(err, RunError::Cancelled(CancelReason::Signal(2))),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "build interrupted");
    // A cancelled token refuses the next run outright.
    let again = sched.run(&g, &[top], |_, _| Ok::<_, String>(()));
    assert!(matches!(again, Err(RunError::Cancelled(_))));
}

#[test]
fn a_panicking_node_is_an_error_not_a_crash() {
    let (g, leaves, top, _) = diamond();
    let err = Scheduler::new(2)
        .run(&g, &[top], |ctx, _| {
            if ctx.id() == leaves[2] {
                panic!("boom");
            }
            Ok::<_, String>(())
        })
        .unwrap_err();
    assert!(
        matches!(&err, RunError::Panicked { key, message, .. } if key == "c" && message == "boom"),
        "{err:?}"
    );
}

#[test]
fn hooks_run_once_registered_late_and_not_after_drop() {
    let t = CancelToken::new();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let dropped = t.on_cancel(move || {
        n2.fetch_add(100, Ordering::SeqCst);
    });
    drop(dropped);
    assert!(t.check().is_ok());
    assert!(t.cancel(CancelReason::Requested));
    assert!(!t.cancel(CancelReason::Signal(15)), "first reason sticks");
    let n3 = n.clone();
    let _g = t.on_cancel(move || {
        n3.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(n.load(Ordering::SeqCst), 1);
    assert_eq!(t.check(), Err(Cancelled(CancelReason::Requested)));
}
