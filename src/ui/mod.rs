//! The only module that imports indicatif, and the one writer of what humans read. Progress on
//! stderr: a live view per builder on a terminal, otherwise one timestamped line per event and
//! a heartbeat, so GoCD/Jenkins logs never go silent. Stages hand their report sections and
//! progress lines to a [`Reporter`]; its implementations live here.

use crate::context::RunContext;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Set once stdout is closed (a `| head` read what it wanted): data output stops there.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The one writer of data on stdout. A closed stdout (`gears amis list | head -1`) ends the
/// output quietly, as ripgrep does, instead of a panic; the command still finishes (and runs
/// its cleanup) with its own exit code. Any other write error is said once on stderr.
pub fn data(text: &str) {
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to stdout: {e}");
        }
    }
}

/// A value as one field of a tab-separated line: a backslash, tab, newline or carriage return
/// inside it is escaped (`\\`, `\t`, `\n`, `\r`), other control characters as `\u{..}`, so
/// no value can add a column or a line of its own.
pub fn field(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A tab-separated line of [`field`]s, with its newline.
pub fn tsv_line(fields: &[&str]) -> String {
    let mut line = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join("\t");
    line.push('\n');
    line
}

/// Rows as a table: columns padded to their widest cell, two spaces apart.
pub fn table(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Where a look that may be repeated is shown (`gears status`, `--watch`).
pub trait Screen: Send + Sync {
    /// Shows one look whole.
    fn show(&self, text: &str);
    /// Whether a new look replaces the last in place (a terminal, outside CI); otherwise a
    /// watch shows one look and ends.
    fn live(&self) -> bool;
}

/// The terminal's stdout as a [`Screen`]: on a terminal outside CI each look is drawn from the
/// top of a cleared screen; otherwise it is printed as data.
pub struct Redraw {
    live: bool,
}

impl Redraw {
    pub fn new(ctx: &RunContext) -> Self {
        Redraw {
            live: ctx.stdout_tty && !ctx.is_ci(),
        }
    }
}

impl Screen for Redraw {
    fn show(&self, text: &str) {
        if self.live {
            // Cursor home, clear the screen: the new look replaces the last.
            data(&format!("\x1b[H\x1b[2J{text}"));
        } else {
            data(text);
        }
    }

    fn live(&self) -> bool {
        self.live
    }
}

/// Where a stage's human report goes: stdout, or stderr when stdout carries data
/// (`--output json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportTo {
    Stdout,
    Stderr,
}

/// What a stage writes for humans, as it happens. Stages never print themselves, so a live view
/// (a `gears test` instance's progress) and a report (the smoke blocks of that instance) share
/// one writer and never tear each other.
pub trait Reporter: Send + Sync {
    /// A section of the stage's report (e.g. one smoke test's block), as soon as it is ready.
    fn section(&self, text: &str);
    /// A timestamped "still running" line on stderr.
    fn heartbeat(&self, stage: &str, text: &str);
    /// A warning on stderr.
    fn warning(&self, text: &str);
    /// A line of progress from one worker (a region, a builder) or the stage as a whole.
    fn progress(&self, worker: Option<&str>, text: &str);
    /// Text a human should see as it is (a rendered error), on stderr.
    fn note(&self, text: &str);
}

/// The terminal: report sections where [`ReportTo`] says, progress and warnings on stderr.
/// With a live view, each write suspends its bars, so lines never cut through them.
pub struct Terminal {
    report_to: ReportTo,
    live: Option<MultiProgress>,
    lock: Mutex<()>,
}

impl Terminal {
    /// Plain output, no live view.
    pub fn new(report_to: ReportTo) -> Self {
        Terminal {
            report_to,
            live: None,
            lock: Mutex::new(()),
        }
    }

    /// Output that shares the terminal with a live view (its bars are suspended while a
    /// section is written).
    pub fn with_live_view(report_to: ReportTo, live: MultiProgress) -> Self {
        Terminal {
            live: Some(live),
            ..Terminal::new(report_to)
        }
    }

    fn write(&self, to: ReportTo, text: &str) {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let put = || match to {
            ReportTo::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            ReportTo::Stderr => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        };
        match &self.live {
            Some(m) => m.suspend(put),
            None => put(),
        }
    }
}

impl Reporter for Terminal {
    fn section(&self, text: &str) {
        self.write(self.report_to, text);
    }

    fn heartbeat(&self, stage: &str, text: &str) {
        self.write(
            ReportTo::Stderr,
            &format!("[{}] {stage}: still running: {text}\n", clock()),
        );
    }

    fn warning(&self, text: &str) {
        self.write(ReportTo::Stderr, &format!("warning: {text}\n"));
    }

    fn progress(&self, worker: Option<&str>, text: &str) {
        for l in text.trim_end().lines() {
            let who = worker.unwrap_or("gears");
            self.write(
                ReportTo::Stderr,
                &format!("[{}] {who}: {}\n", clock(), l.trim()),
            );
        }
    }

    fn note(&self, text: &str) {
        let nl = if text.ends_with('\n') { "" } else { "\n" };
        self.write(ReportTo::Stderr, &format!("{text}{nl}"));
    }
}

/// A reporter that keeps what it is given, in order (tests, and stages whose output is
/// composed by a caller).
#[derive(Default)]
pub struct Recorded {
    lines: Mutex<Vec<(&'static str, String)>>,
}

impl Recorded {
    /// Everything reported so far: `("section" | "heartbeat" | "warning", text)`.
    pub fn taken(&self) -> Vec<(&'static str, String)> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn push(&self, kind: &'static str, text: String) {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((kind, text));
    }
}

impl Reporter for Recorded {
    fn section(&self, text: &str) {
        self.push("section", text.to_owned());
    }
    fn heartbeat(&self, stage: &str, text: &str) {
        self.push("heartbeat", format!("{stage}: {text}"));
    }
    fn warning(&self, text: &str) {
        self.push("warning", text.to_owned());
    }
    fn progress(&self, worker: Option<&str>, text: &str) {
        self.push("progress", format!("{}: {text}", worker.unwrap_or("-")));
    }
    fn note(&self, text: &str) {
        self.push("note", text.to_owned());
    }
}

/// A stage's progress view ([`StageProgress`]) as a [`Reporter`]: live bars per worker on a
/// terminal outside CI, timestamped lines otherwise.
pub struct Staged(Mutex<StageProgress>);

impl Staged {
    pub fn new(ctx: &RunContext, stage: &'static str, workers: &[String]) -> Self {
        Staged(Mutex::new(StageProgress::new(ctx, stage, workers)))
    }

    fn view(&self) -> std::sync::MutexGuard<'_, StageProgress> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the live view.
    pub fn finish(&self, ok: bool) {
        self.view().finish(ok);
    }
}

impl Reporter for Staged {
    fn section(&self, text: &str) {
        self.view().note(text.trim_end());
    }
    fn heartbeat(&self, _stage: &str, _text: &str) {
        self.view().heartbeat();
    }
    fn warning(&self, text: &str) {
        self.view().note(&format!("warning: {text}"));
    }
    fn progress(&self, worker: Option<&str>, text: &str) {
        self.view().line(worker, text);
    }
    fn note(&self, text: &str) {
        let mut v = self.view();
        match &v.live {
            Some(_) => v.note(text.trim_end()),
            None => eprint!("{text}"),
        }
    }
}

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
                crate::text::human_duration(self.start.elapsed())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cannot_add_a_column_or_a_line() {
        // A COMPONENT_VERSION that tries to print a fake `kept` row.
        let forged = "1.0\tkept\tfine\nus-east-1\tami-evil\t9\tkept";
        let line = tsv_line(&["us-east-1", "ami-1", forged, "deregistered"]);
        assert_eq!(line.matches('\t').count(), 3, "{line}");
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with("\tderegistered\n"));
        assert_eq!(field("a\\b\r\u{7}"), "a\\\\b\\r\\u{7}");
        assert_eq!(field("plain 1.0"), "plain 1.0");
    }
}
