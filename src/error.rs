//! The one top-level error, its exit code and how it is printed.
//!
//! Layers keep their own typed errors ([`InputError`], [`crate::packer::PackerError`],
//! [`crate::aws::CloudError`]); [`Error::exit`] maps them to the documented exit codes by type,
//! never by message text. [`Error::render`] prints `error:` / `caused by:` / `hint:`.

use crate::exit::Exit;
use std::fmt;

/// A problem in a file the user gave us (component file, smoke file, template), located at
/// `file:line:col`, with the offending source line and an optional hint.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    /// The file as the user named it (`-` or `<stdin>` for standard input).
    pub path: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What is wrong, without the location.
    pub message: String,
    /// What to do about it, e.g. the closest valid key.
    pub hint: Option<String>,
    /// The offending line of the source, for the caret display: the whole line, or a window of
    /// it around the column when the line is long (see [`WINDOW`]).
    pub source_line: Option<String>,
    /// How many characters of `source_line` come before the caret.
    pub caret: usize,
}

/// Lines longer than this many characters are shown as a window around the column, so an error
/// in a 50 MB one-line JSON file prints one short line, not the file and a caret padded to it.
pub const WINDOW: usize = 120;

impl InputError {
    /// An error with no precise place in the file.
    pub fn whole_file(path: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            path: path.into(),
            line: 0,
            column: 0,
            message: message.into(),
            hint: None,
            source_line: None,
            caret: 0,
        }
    }

    /// An error at `line:column` of `source`.
    pub fn at(
        path: impl Into<String>,
        source: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        let text = if line > 0 {
            source.lines().nth(line - 1)
        } else {
            None
        };
        Self::on_line(path, text, line, column, message)
    }

    /// An error at `line:column`, given the text of that line (`None`: not shown). A long line
    /// is kept only as a window around the column.
    pub fn on_line(
        path: impl Into<String>,
        text: Option<&str>,
        line: usize,
        column: usize,
        message: impl Into<String>,
    ) -> Self {
        let (source_line, caret) = match text {
            Some(t) if line > 0 => {
                let (w, c) = line_window(t, column);
                (Some(w), c)
            }
            _ => (None, 0),
        };
        InputError {
            path: path.into(),
            line,
            column,
            message: message.into(),
            hint: None,
            source_line,
            caret,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The `file:line:col` prefix.
    pub fn place(&self) -> String {
        if self.line == 0 {
            self.path.clone()
        } else {
            format!("{}:{}:{}", self.path, self.line, self.column)
        }
    }
}

/// The part of `line` to show for an error at 1-based `column` (in characters), and the number
/// of characters before the caret in it: the whole line when it is short, else [`WINDOW`]
/// characters around the column with `…` where it was cut.
pub fn line_window(line: &str, column: usize) -> (String, usize) {
    let (window, caret) = window_of(line, column);
    // A control character (a bell, an escape sequence) is shown, not played on the terminal.
    let shown = window
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    (shown, caret)
}

fn window_of(line: &str, column: usize) -> (String, usize) {
    let col = column.saturating_sub(1);
    // Count at most what the window needs: a 50 MB line is not walked twice.
    let len = line.chars().take(WINDOW + 1).count();
    if len <= WINDOW {
        return (line.to_owned(), col.min(len));
    }
    let half = WINDOW / 2;
    let start = col.saturating_sub(half);
    let mut window: String = line.chars().skip(start).take(WINDOW).collect();
    let mut caret = col - start;
    if start > 0 {
        window.insert(0, '…');
        caret += 1;
    }
    if line.chars().nth(start + WINDOW).is_some() {
        window.push('…');
    }
    (window, caret)
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place(), self.message)
    }
}

impl std::error::Error for InputError {}

/// The top-level error of a gears run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line or environment fallback (exit 2).
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// Invalid config, smoke file or template (exit 3).
    #[error(transparent)]
    Input(#[from] InputError),
    /// Several input errors found in one pass (exit 3).
    #[error("{} problems in the input", .0.len())]
    Inputs(Vec<InputError>),
    /// A file we were asked to read could not be read (exit 3).
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A report or manifest could not be written (exit 3).
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Packer failed or produced no AMI (exit 4).
    #[error(transparent)]
    Packer(#[from] crate::packer::PackerError),
    /// AWS said no, after retries (exit 5).
    #[error(transparent)]
    Cloud(#[from] crate::aws::CloudError),
    /// A deploy lock is held by another run (exit 5: retry later), or the line is stopped
    /// after a failed rollback (exit 7: a human must look).
    #[error("{message}")]
    Locked {
        message: String,
        hint: String,
        stopped: bool,
    },
    /// A signal stopped the run; cleanup has run (exit 130/143).
    #[error("interrupted by {0}; cleanup finished")]
    Interrupted(crate::cancel::Signal),
}

impl Error {
    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, hint: Option<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint,
        }
    }

    /// The documented exit code of this error.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage { .. } => Exit::Usage,
            Error::Input(_) | Error::Inputs(_) | Error::Read { .. } | Error::Write { .. } => {
                Exit::InvalidInput
            }
            Error::Packer(_) => Exit::Packer,
            Error::Cloud(_) | Error::Locked { stopped: false, .. } => Exit::Cloud,
            Error::Locked { stopped: true, .. } => Exit::NeedsHuman,
            Error::Interrupted(sig) => sig.exit(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } => hint.clone(),
            Error::Input(e) => e.hint.clone(),
            Error::Packer(e) => e.hint(),
            Error::Cloud(e) => e.hint(),
            Error::Locked { hint, .. } => Some(hint.clone()),
            _ => None,
        }
    }

    /// The text printed on stderr: `error:`, the source line with a caret for input errors,
    /// `caused by:` for each source, and `hint:`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match self {
            Error::Inputs(errors) => {
                for e in errors {
                    render_input(&mut out, e);
                }
                out.push_str(&format!(
                    "error: {} problems found; nothing was run\n",
                    errors.len()
                ));
                return out;
            }
            Error::Input(e) => {
                render_input(&mut out, e);
                return out;
            }
            _ => out.push_str(&format!("error: {self}\n")),
        }
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            out.push_str(&format!("caused by: {s}\n"));
            source = s.source();
        }
        if let Some(h) = self.hint() {
            out.push_str(&format!("hint: {h}\n"));
        }
        out
    }
}

fn render_input(out: &mut String, e: &InputError) {
    out.push_str(&format!("error: {e}\n"));
    if let Some(src) = &e.source_line {
        let num = e.line.to_string();
        let pad = " ".repeat(num.len());
        out.push_str(&format!("{pad} |\n{num} | {src}\n"));
        let caret_at = src
            .chars()
            .take(e.caret)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect::<String>();
        out.push_str(&format!("{pad} | {caret_at}^\n"));
    }
    if let Some(h) = &e.hint {
        out.push_str(&format!("hint: {h}\n"));
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Builds the located error from serde's message: drops serde's own " at line X column Y",
/// names the key path, and turns "unknown field/variant" lists into a closest-key hint.
pub fn located(path: &str, source: &str, line: usize, column: usize, msg: &str) -> InputError {
    let text = if line > 0 {
        source.lines().nth(line - 1)
    } else {
        None
    };
    located_on_line(path, text, line, column, msg)
}

/// [`located`], given the text of the line (e.g. with secrets already masked).
pub fn located_on_line(
    path: &str,
    text: Option<&str>,
    line: usize,
    column: usize,
    msg: &str,
) -> InputError {
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => &msg[..i],
        _ => msg,
    };
    let (message, hint) = explain_unknown(msg);
    let mut err = InputError::on_line(path, text, line, column, message);
    err.hint = hint;
    err
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into a short message and a
/// hint naming the closest key (or listing the valid ones).
pub fn explain_unknown(msg: &str) -> (String, Option<String>) {
    for (marker, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        let Some(start) = msg.find(marker) else {
            continue;
        };
        let prefix = &msg[..start];
        let rest = &msg[start + marker.len()..];
        let Some(end) = rest.find('`') else { continue };
        let word = &rest[..end];
        let expected: Vec<&str> = rest[end..]
            .split('`')
            .skip(2)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        let message = format!("{prefix}unknown {what} `{word}`");
        let hint = match closest(word, &expected) {
            Some(c) => format!("did you mean `{c}`?"),
            None if expected.is_empty() => format!("this {what} is not allowed here"),
            None => format!("expected one of: {}", expected.join(", ")),
        };
        return (message, Some(hint));
    }
    (msg.to_owned(), None)
}

/// An error from serde_yaml, located in `source`.
pub fn yaml_error(path: &str, source: &str, e: serde_yaml::Error) -> InputError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    located(path, source, line, column, &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_error_renders_place_line_and_caret() {
        let src = "tests:\n  - nmae: x\n";
        let e = InputError::at("smoke.yaml", src, 2, 5, "unknown key `nmae`")
            .with_hint("did you mean `name`?");
        let text = Error::from(e).render();
        assert_eq!(
            text,
            "error: smoke.yaml:2:5: unknown key `nmae`\n  |\n2 |   - nmae: x\n  |     ^\nhint: did you mean `name`?\n"
        );
    }

    #[test]
    fn a_long_line_is_shown_as_a_window_around_the_column() {
        let line = format!("{}BAD{}", "a".repeat(100_000), "b".repeat(100_000));
        let e = InputError::at("big.json", &line, 1, 100_001, "here");
        let text = Error::from(e).render();
        assert!(text.len() < 600, "{} bytes", text.len());
        let lines: Vec<&str> = text.lines().collect();
        let src = lines[2].trim_start_matches("1 | ");
        let caret = lines[3].trim_start_matches("  | ");
        assert!(src.starts_with('…') && src.ends_with('…'), "{src}");
        let at = caret.chars().count() - 1;
        let shown: String = src.chars().skip(at).take(3).collect();
        assert_eq!(
            shown, "BAD",
            "the caret points at the column:\n{src}\n{caret}"
        );
        // A short line is shown whole, control characters as U+FFFD.
        assert_eq!(line_window("abc", 2), ("abc".to_owned(), 1));
        assert_eq!(
            line_window("a\u{7}\u{1b}[2J", 2),
            ("a\u{fffd}\u{fffd}[2J".to_owned(), 1)
        );
        assert_eq!(line_window("abc", 0), ("abc".to_owned(), 0));
    }

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["name", "uri", "outcomes", "inputs"];
        assert_eq!(closest("nmae", &keys), Some("name"));
        assert_eq!(closest("outcome", &keys), Some("outcomes"));
        assert_eq!(closest("zzzzzz", &keys), None);
    }

    #[test]
    fn exit_codes_follow_the_error_type() {
        assert_eq!(Error::usage("x", None).exit(), Exit::Usage);
        assert_eq!(
            Error::from(InputError::whole_file("f", "m")).exit(),
            Exit::InvalidInput
        );
        assert_eq!(
            Error::Interrupted(crate::cancel::Signal::Term).exit(),
            Exit::Terminated
        );
    }
}
