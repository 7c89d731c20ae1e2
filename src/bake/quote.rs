//! Quoting for the two interpreters a value passes through on its way to the build instance:
//! Packer's Go template engine (every string in the template) and, for ansible-local's
//! `extra_arguments`, the remote `sh -c` (see shared/research/packer-moto.md §6).

/// Escapes `{{` so Packer's template engine prints it instead of starting an action.
/// A lone `}}` is plain text to Go templates and needs nothing.
pub fn packer_literal(s: &str) -> String {
    s.replace("{{", "{{\"{{\"}}")
}

/// Wraps a value in single quotes for `sh`, escaping embedded quotes as `'\''`: spaces, `$`,
/// `;`, backquotes and newlines arrive intact and are never executed.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Why a value cannot be carried safely, if it cannot: NUL and other control characters
/// (newline and tab are fine).
pub fn unsafe_reason(s: &str) -> Option<String> {
    s.chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
        .map(|c| format!("contains the control character U+{:04X}, which cannot be passed through a shell or an AWS tag", c as u32))
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
    fn packer_literal_escapes_actions_only() {
        assert_eq!(packer_literal("a {{ b }} c"), "a {{\"{{\"}} b }} c");
        assert_eq!(packer_literal("no braces }}"), "no braces }}");
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(unsafe_reason("ok\nfine\t").is_none());
        assert!(unsafe_reason("nul\0").unwrap().contains("U+0000"));
    }
}
