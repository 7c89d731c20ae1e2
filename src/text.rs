//! Text every stage writes the same way: shell words for commands gears prints or hands to a
//! remote shell, and ages and durations as people say them. Below the stages: it imports none.

use std::time::Duration;

/// Wraps a value in single quotes for `sh`, escaping embedded quotes as `'\''`: spaces, `$`,
/// `;`, backquotes and newlines arrive intact and are never executed.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A value as one shell word: as it is when it is plain, else [`shell_quote`]d (for commands
/// printed for a human to copy).
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        s.to_owned()
    } else {
        shell_quote(s)
    }
}

/// An age as people say it: `45s`, `12m`, `5h12m`, `3d4h` (a negative age is `0s`).
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A duration to a tenth of a second under a minute (`4.2s`), else in minutes and seconds
/// (`1m05s`).
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_round_trips_through_sh() {
        for v in [
            "plain",
            "1.0'; rm -rf /",
            "a b\nc",
            "$HOME `id` \"q\"",
            "{{ .Name }}",
            "'",
            "",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", shell_quote(v)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), v);
        }
    }

    #[test]
    fn shell_words_are_quoted_only_when_they_must_be() {
        assert_eq!(shell_word("hello-web_1.0"), "hello-web_1.0");
        assert_eq!(shell_word("us-east-1:lt-1=@%+,/"), "us-east-1:lt-1=@%+,/");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn ages_and_durations_as_people_say_them() {
        assert_eq!(human_age(-5), "0s");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3599), "59m");
        assert_eq!(human_age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(human_age(2 * 86_400 + 7200), "2d2h");
        assert_eq!(human_duration(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(human_duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "60m00s");
    }
}
