//! One cancellation token for the whole run. SIGINT and SIGTERM cancel it; every wait selects on
//! it; the signal that came first decides the exit code (130 or 143) after cleanup.

use crate::exit::Exit;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The signal that stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C): exit 130.
    Int,
    /// SIGTERM (CI aborting the stage): exit 143.
    Term,
}

impl Signal {
    /// The exit code after cleanup.
    pub fn exit(self) -> Exit {
        match self {
            Signal::Int => Exit::Interrupted,
            Signal::Term => Exit::Terminated,
        }
    }

    /// The raw signal number, for passing it on to a child process.
    pub fn number(self) -> i32 {
        match self {
            Signal::Int => 2,
            Signal::Term => 15,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        })
    }
}

/// The run's cancellation: a token plus the signal that triggered it.
#[derive(Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    signal: Arc<Mutex<Option<Signal>>>,
}

impl Cancel {
    /// A token nobody has cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the run because of `signal` (the first signal wins).
    pub fn cancel(&self, signal: Signal) {
        let mut s = self.signal.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_none() {
            *s = Some(signal);
        }
        self.token.cancel();
    }

    /// The signal that cancelled the run, if any.
    pub fn signal(&self) -> Option<Signal> {
        *self.signal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when the run is cancelled.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Whether the run has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Installs SIGINT/SIGTERM handlers that cancel this token. Must run inside the runtime.
    pub fn listen_for_signals(&self) {
        use tokio::signal::unix::{signal, SignalKind};
        let me = self.clone();
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => me.cancel(Signal::Int),
                    _ = term.recv() => me.cancel(Signal::Term),
                }
            }
        });
    }
}

type CleanupFn = Box<
    dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send,
>;

/// Resources gears created that must be undone before it exits, whatever happens (a test
/// instance, a deploy lock, suspended scaling processes). `Drop` cannot `.await`, so stages
/// register an undo step here and mark it done when they release the resource themselves; the
/// composition root runs what is left before exiting, newest first.
#[derive(Clone, Default)]
pub struct Cleanup {
    steps: Arc<Mutex<Vec<(u64, String, CleanupFn)>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// A registered cleanup step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupId(u64);

impl Cleanup {
    /// Registers `undo`, described for the log (e.g. "terminate test instance i-0abc").
    pub fn register<F, Fut>(&self, what: impl Into<String>, undo: F) -> CleanupId
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let step: CleanupFn = Box::new(move || Box::pin(undo()));
        self.steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, what.into(), step));
        CleanupId(id)
    }

    /// The stage released the resource itself: nothing left to undo.
    pub fn done(&self, id: CleanupId) {
        self.steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _, _)| *i != id.0);
    }

    /// How many steps are pending.
    pub fn pending(&self) -> usize {
        self.steps.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Runs every pending step, newest first; returns each description with its outcome.
    pub async fn run_all(&self) -> Vec<(String, Result<(), String>)> {
        let steps: Vec<_> =
            std::mem::take(&mut *self.steps.lock().unwrap_or_else(|p| p.into_inner()));
        let mut out = Vec::with_capacity(steps.len());
        for (_, what, step) in steps.into_iter().rev() {
            out.push((what, step().await));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cleanup_runs_pending_steps_newest_first() {
        let c = Cleanup::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        for name in ["instance", "lock", "released"] {
            let log = log.clone();
            let id = c.register(format!("undo {name}"), move || async move {
                log.lock().unwrap().push(name);
                if name == "lock" {
                    Err("lock table unreachable".to_owned())
                } else {
                    Ok(())
                }
            });
            if name == "released" {
                c.done(id);
            }
        }
        assert_eq!(c.pending(), 2);
        let results = c.run_all().await;
        assert_eq!(*log.lock().unwrap(), vec!["lock", "instance"]);
        assert_eq!(
            results[0],
            (
                "undo lock".to_owned(),
                Err("lock table unreachable".to_owned())
            )
        );
        assert_eq!(results[1], ("undo instance".to_owned(), Ok(())));
        assert_eq!(c.pending(), 0);
        assert!(c.run_all().await.is_empty(), "each step runs once");
    }

    #[test]
    fn the_first_signal_decides_the_exit_code() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        c.cancel(Signal::Term);
        c.cancel(Signal::Int);
        assert_eq!(c.signal(), Some(Signal::Term));
        assert_eq!(c.signal().unwrap().exit(), Exit::Terminated);
    }
}
