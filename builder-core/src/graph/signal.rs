//! Ctrl-C and SIGTERM cancel the build the same way a failing step does.
//!
//! The signal handler itself only writes to a self-pipe (signal-hook's
//! iterator); a watcher thread reads it and cancels the token, so hooks run
//! in ordinary thread context. A second SIGINT or SIGTERM while the first is
//! being handled exits at once with 128+signal, as people expect when a
//! cleanup hangs.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use super::{CancelReason, CancelToken};

/// Keeps the watcher thread alive; dropping it stops the watcher. The
/// process keeps catching the signals afterwards (signal-hook cannot
/// restore the previous disposition), so install it once per process.
pub struct SignalGuard {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

/// Cancels `token` with [`CancelReason::Signal`] on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: &CancelToken) -> std::io::Result<SignalGuard> {
    let second = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered before the iterator so the flag is checked first.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, second.clone())?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    let token = token.clone();
    let thread = std::thread::Builder::new()
        .name("kiln-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                second.store(true, std::sync::atomic::Ordering::SeqCst);
                token.cancel(CancelReason::Signal(sig));
            }
        })?;
    Ok(SignalGuard {
        handle,
        thread: Some(thread),
    })
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
