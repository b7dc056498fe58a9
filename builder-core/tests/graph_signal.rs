//! SIGINT cancels a running build like a failing step does: its own test
//! binary, because the handler stays installed for the process's lifetime.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use builder_core::graph::signal::cancel_on_signals;
use builder_core::graph::{CancelReason, CancelToken, Graph, RunError, Scheduler};

#[test]
fn sigint_cancels_the_running_steps_and_runs_their_kill_hooks() {
    let token = CancelToken::new();
    let _guard = cancel_on_signals(&token).unwrap();
    let mut g = Graph::new();
    let a = g.add("a", ());
    let b = g.add("b", ());
    let top = g.add_with_deps("top", (), &[a, b]).unwrap();
    let killed = Arc::new(AtomicBool::new(false));
    let sched = Scheduler::new(2).with_cancel(token.clone());
    let err = sched
        .run(&g, &[top], |ctx, _| {
            let k = killed.clone();
            let _hook = ctx
                .cancel()
                .on_cancel(move || k.store(true, Ordering::SeqCst));
            if ctx.id() == a {
                rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::INT,
                )
                .unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                ctx.cancel().check().map_err(|c| c.to_string())?;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok::<_, String>(())
        })
        .unwrap_err();
    assert!(
        matches!(err, RunError::Cancelled(CancelReason::Signal(2))),
        "{err:?}"
    );
    assert!(killed.load(Ordering::SeqCst));
}
