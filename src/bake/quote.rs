//! Quoting for the two interpreters a value passes through on its way to the build instance:
//! Packer's Go template engine (every string in the template, `-var-file` values too) and, for
//! ansible-local's `extra_arguments`, the remote `sh -c` (see shared/research/packer-moto.md §6).
//!
//! Packer 1.6 cannot carry `{{`: measured against moto, it renders values again and again until
//! no `{{` is left, so `{{"{{"}}` escapes (once, twice, four times) and `-var-file` values all
//! came back evaluated (`{{timestamp}}` → `1795441459`). gears therefore refuses `{{` in values
//! it hands to Packer instead of letting Packer evaluate them.

/// Wraps a value in single quotes for `sh`, escaping embedded quotes as `'\''`: spaces, `$`,
/// `;`, backquotes and newlines arrive intact and are never executed.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Why a value cannot be carried safely, if it cannot: `{{` (Packer would evaluate it), NUL
/// and other control characters (newline and tab are fine).
pub fn unsafe_reason(s: &str) -> Option<String> {
    if s.contains("{{") {
        return Some(
            "contains `{{`, which Packer 1.6 evaluates as a template (it re-renders values until no `{{` is left), so it cannot arrive intact"
                .to_owned(),
        );
    }
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
    fn control_characters_are_refused() {
        assert!(unsafe_reason("ok\nfine\t }} {%").is_none());
        assert!(unsafe_reason("a {{ b }}").unwrap().contains("`{{`"));
        assert!(unsafe_reason("nul\0").unwrap().contains("U+0000"));
    }
}
