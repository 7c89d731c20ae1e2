//! One cancellation token for the whole run. SIGINT and SIGTERM cancel it; every wait selects on
//! it; the signal that came first decides the exit code (130 or 143) after cleanup. Cleanup runs
//! on its own token, which only a second signal cancels: then gears says what is left undone and
//! exits.

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
    /// Cancelled by the second signal: cleanup's own token.
    escalation: CancellationToken,
    signals: Arc<std::sync::atomic::AtomicU32>,
    signal: Arc<Mutex<Option<Signal>>>,
}

impl Cancel {
    /// A token nobody has cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the run because of `signal` (the first signal wins); a second signal also
    /// cancels cleanup.
    pub fn cancel(&self, signal: Signal) {
        let mut s = self.signal.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_none() {
            *s = Some(signal);
        }
        drop(s);
        let n = self
            .signals
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        self.token.cancel();
        if n >= 2 {
            self.escalation.cancel();
        }
    }

    /// The token cleanup runs under: not cancelled by the signal that stopped the run, only by
    /// a second one. Waits inside cleanup steps select on this one.
    pub fn for_cleanup(&self) -> Cancel {
        Cancel {
            token: self.escalation.clone(),
            escalation: self.escalation.clone(),
            signals: self.signals.clone(),
            signal: self.signal.clone(),
        }
    }

    /// Resolves at the second signal.
    pub async fn escalated(&self) {
        self.escalation.cancelled().await
    }

    /// The signal that cancelled the run, if any.
    pub fn signal(&self) -> Option<Signal> {
        *self.signal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The signal that ended the run: the one that cancelled it, SIGINT when none did (a
    /// cancellation not caused by a signal is reported as an interruption). What
    /// [`crate::error::Error::Interrupted`] carries.
    pub fn ended_by(&self) -> Signal {
        self.signal().unwrap_or(Signal::Int)
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
    /// Says better what step `id` is (what a second signal reports as left undone), as more
    /// becomes known while it runs.
    pub fn rename(&self, id: CleanupId, what: impl Into<String>) {
        let what = what.into();
        for step in self
            .steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter_mut()
            .filter(|(i, _, _)| *i == id.0)
        {
            step.1 = what.clone();
        }
    }

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

    /// What the pending steps would undo, newest first.
    pub fn pending_steps(&self) -> Vec<String> {
        self.steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .map(|(_, what, _)| what.clone())
            .collect()
    }

    /// Runs every pending step, newest first, until `deadline` passes or `cancel` (cleanup's
    /// own token, [`Cancel::for_cleanup`]) fires; returns each step with its outcome. Steps
    /// not reached are reported as [`Undone::NotRun`].
    pub async fn run_all(
        &self,
        cancel: &Cancel,
        deadline: tokio::time::Instant,
    ) -> Vec<(String, Result<(), Undone>)> {
        let steps: Vec<_> =
            std::mem::take(&mut *self.steps.lock().unwrap_or_else(|p| p.into_inner()));
        let mut out = Vec::with_capacity(steps.len());
        let mut stop: Option<Undone> = None;
        for (_, what, step) in steps.into_iter().rev() {
            if let Some(why) = &stop {
                out.push((what, Err(why.clone())));
                continue;
            }
            let result = tokio::select! {
                // A second signal wins over a step that noticed it too and gave up.
                biased;
                _ = cancel.cancelled() => {
                    stop = Some(Undone::NotRun("a second signal stopped cleanup"));
                    Err(Undone::Abandoned)
                }
                r = tokio::time::timeout_at(deadline, step()) => match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(Undone::Failed(e)),
                    Err(_) => {
                        stop = Some(Undone::NotRun("the cleanup deadline passed"));
                        Err(Undone::DeadlinePassed)
                    }
                },
            };
            out.push((what, result));
        }
        out
    }
}

/// Why a cleanup step did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undone {
    /// The step ran and failed.
    Failed(String),
    /// The step was still running when cleanup's deadline passed.
    DeadlinePassed,
    /// The step was still running when a second signal came.
    Abandoned,
    /// The step never started, for this reason.
    NotRun(&'static str),
}

impl std::fmt::Display for Undone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undone::Failed(e) => f.write_str(e),
            Undone::DeadlinePassed => f.write_str("still running when the cleanup deadline passed"),
            Undone::Abandoned => f.write_str("abandoned at a second signal"),
            Undone::NotRun(why) => write!(f, "not started: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_renamed_while_it_runs_is_named_so_in_what_is_left() {
        let c = Cleanup::default();
        let id = c.register("packer's cleanup of its build resources", || async {
            Ok(())
        });
        let other = c.register("something else", || async { Ok(()) });
        c.rename(id, "packer's cleanup of instance i-0123456789abcdef0");
        let steps = c.pending_steps();
        assert!(
            steps.contains(&"packer's cleanup of instance i-0123456789abcdef0".to_owned()),
            "{steps:?}"
        );
        assert!(steps.contains(&"something else".to_owned()), "{steps:?}");
        c.done(other);
        c.done(id);
        assert_eq!(c.pending(), 0);
    }

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
        assert_eq!(c.pending_steps(), ["undo lock", "undo instance"]);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let results = c.run_all(&Cancel::new(), deadline).await;
        assert_eq!(*log.lock().unwrap(), vec!["lock", "instance"]);
        assert_eq!(
            results[0],
            (
                "undo lock".to_owned(),
                Err(Undone::Failed("lock table unreachable".to_owned()))
            )
        );
        assert_eq!(results[1], ("undo instance".to_owned(), Ok(())));
        assert_eq!(c.pending(), 0);
        assert!(
            c.run_all(&Cancel::new(), deadline).await.is_empty(),
            "each step runs once"
        );
    }

    /// A step that waits for AWS (here: 3 polls 1 s apart) with poll_until on cleanup's token.
    fn waiting_step(
        c: &Cleanup,
        cancel: &Cancel,
        log: &Arc<Mutex<Vec<String>>>,
        name: &'static str,
    ) {
        let (cancel, log) = (cancel.for_cleanup(), log.clone());
        c.register(name, move || async move {
            let start = tokio::time::Instant::now();
            let r = crate::wait::poll_until(
                Some(start + std::time::Duration::from_secs(30)),
                crate::wait::Backoff {
                    first: std::time::Duration::from_secs(1),
                    max: std::time::Duration::from_secs(1),
                },
                &cancel,
                || async { tokio::time::Instant::now() - start },
                |waited| *waited >= std::time::Duration::from_secs(3),
            )
            .await;
            log.lock().unwrap().push(format!("{name}: {r:?}"));
            match r {
                crate::wait::Polled::Ready(..) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_after_a_signal_runs_on_its_own_token() {
        let cancel = Cancel::new();
        let c = Cleanup::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        waiting_step(&c, &cancel, &log, "terminate i-1");
        // The run was stopped by SIGTERM: its token is cancelled, cleanup's is not.
        cancel.cancel(Signal::Term);
        assert!(cancel.is_cancelled());
        let start = tokio::time::Instant::now();
        let results = c
            .run_all(
                &cancel.for_cleanup(),
                start + std::time::Duration::from_secs(60),
            )
            .await;
        assert_eq!(results, vec![("terminate i-1".to_owned(), Ok(()))]);
        // The wait inside really waited (3 polls), instead of returning at once.
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(3));
        assert_eq!(cancel.signal(), Some(Signal::Term));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_abandons_cleanup_and_says_what_is_left() {
        let cancel = Cancel::new();
        let c = Cleanup::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        waiting_step(&c, &cancel, &log, "terminate i-1");
        waiting_step(&c, &cancel, &log, "release lock");
        cancel.cancel(Signal::Int);
        let second = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            second.cancel(Signal::Int);
        });
        let start = tokio::time::Instant::now();
        let results = c
            .run_all(
                &cancel.for_cleanup(),
                start + std::time::Duration::from_secs(60),
            )
            .await;
        assert_eq!(
            results,
            vec![
                ("release lock".to_owned(), Err(Undone::Abandoned)),
                (
                    "terminate i-1".to_owned(),
                    Err(Undone::NotRun("a second signal stopped cleanup"))
                ),
            ]
        );
        assert_eq!(start.elapsed(), std::time::Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_stops_at_its_deadline() {
        let cancel = Cancel::new();
        let c = Cleanup::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        waiting_step(&c, &cancel, &log, "terminate i-1");
        let start = tokio::time::Instant::now();
        let results = c
            .run_all(
                &cancel.for_cleanup(),
                start + std::time::Duration::from_secs(2),
            )
            .await;
        assert_eq!(
            results,
            vec![("terminate i-1".to_owned(), Err(Undone::DeadlinePassed))]
        );
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(2));
    }

    #[test]
    fn the_first_signal_decides_the_exit_code() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        c.cancel(Signal::Term);
        c.cancel(Signal::Int);
        assert_eq!(c.signal(), Some(Signal::Term));
        assert_eq!(c.signal().unwrap().exit(), Exit::Terminated);
        assert_eq!(c.ended_by(), Signal::Term);
        assert_eq!(Cancel::new().ended_by(), Signal::Int);
    }
}
