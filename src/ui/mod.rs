//! The only module that imports indicatif. Progress on stderr: a live view per builder on a
//! terminal, otherwise one timestamped line per event and a heartbeat, so GoCD/Jenkins logs
//! never go silent.

use crate::context::RunContext;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Progress of a stage with named workers (builders).
pub struct StageProgress {
    live: Option<(MultiProgress, BTreeMap<String, ProgressBar>)>,
    start: Instant,
    stage: &'static str,
}

fn clock() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

/// A timestamped "still running" line on stderr, for stages without a live view.
pub fn heartbeat(stage: &str, text: &str) {
    eprintln!("[{}] {stage}: still running: {text}", clock());
}

/// `1m05s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl StageProgress {
    /// A view for `workers`; live only on a terminal outside CI.
    pub fn new(ctx: &RunContext, stage: &'static str, workers: &[String]) -> Self {
        let live = ctx.live_progress().then(|| {
            let multi = MultiProgress::new();
            let style =
                ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = workers
                .iter()
                .map(|w| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(w.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    (w.clone(), bar)
                })
                .collect();
            (multi, bars)
        });
        StageProgress {
            live,
            start: Instant::now(),
            stage,
        }
    }

    /// A line of progress from one worker (or the stage as a whole).
    pub fn line(&mut self, worker: Option<&str>, text: &str) {
        let text = text.trim_end();
        if text.trim().is_empty() {
            return;
        }
        match (&self.live, worker) {
            (Some((_, bars)), Some(w)) if bars.contains_key(w) => {
                let last = text.lines().last().unwrap_or("").trim();
                bars[w].set_message(last.to_owned());
            }
            (Some((multi, _)), _) => {
                let _ = multi.println(text);
            }
            (None, _) => {
                for l in text.lines() {
                    eprintln!(
                        "[{}] {}: {}",
                        clock(),
                        worker.unwrap_or(self.stage),
                        l.trim()
                    );
                }
            }
        }
    }

    /// Something a human should see whatever the mode.
    pub fn note(&mut self, text: &str) {
        match &self.live {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None => eprintln!("[{}] {}: {text}", clock(), self.stage),
        }
    }

    /// Called when the work has been quiet for a while.
    pub fn heartbeat(&mut self) {
        if self.live.is_none() {
            eprintln!(
                "[{}] {}: still running after {}",
                clock(),
                self.stage,
                human_duration(self.start.elapsed())
            );
        }
    }

    /// Ends the live view; `ok` marks each worker done or failed.
    pub fn finish(&mut self, ok: bool) {
        if let Some((_, bars)) = self.live.take() {
            for bar in bars.values() {
                bar.finish_with_message(if ok { "done" } else { "failed" });
            }
        }
    }
}
