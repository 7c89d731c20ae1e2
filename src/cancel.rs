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
