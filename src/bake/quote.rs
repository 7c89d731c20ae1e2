//! Quoting for the interpreters a value passes through on its way to the build instance:
//! Packer's Go template engine (every string in the template, `-var-file` values too), for
//! ansible-local's `extra_arguments` the remote `sh -c` (see shared/research/packer-moto.md §6),
//! and Ansible's own Jinja templating of variables, which [`ansible_vars_file`] turns off.
//!
//! Packer 1.6 cannot carry `{{`: measured against moto, it renders values again and again until
//! no `{{` is left, so `{{"{{"}}` escapes (once, twice, four times) and `-var-file` values all
//! came back evaluated (`{{timestamp}}` → `1795441459`). gears therefore refuses `{{` in values
//! it hands to Packer instead of letting Packer evaluate them.

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

/// The playbook's vars as a YAML file for `ansible-playbook --extra-vars @FILE`, every string
/// tagged `!unsafe`: Ansible then never evaluates `{{`, `{%` or `{#` in a value (it would turn
/// `2.0 {%raw%}` into `2.0 `, and fail the play on `1.0-{%`). Numbers, booleans and null keep
/// their type; lists and maps are written in flow style, their strings tagged too. Strings are
/// double-quoted with every character outside printable ASCII escaped, so any text survives
/// the YAML reader byte for byte.
pub fn ansible_vars_file(vars: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::from(
        "# Written by gears: the vars of this bake, passed with --extra-vars @FILE. Every string\n# is !unsafe, so Ansible takes it as it is and never evaluates template syntax in it.\n",
    );
    for (k, v) in vars {
        out.push_str(&yaml_string(k));
        out.push_str(": ");
        yaml_value(v, &mut out);
        out.push('\n');
    }
    out
}

fn yaml_value(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        // YAML 1.1 (PyYAML) reads `1e5` as a string: non-integers say they are floats.
        Value::Number(n) if n.is_f64() => out.push_str(&format!("!!float {n}")),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => {
            out.push_str("!unsafe ");
            out.push_str(&yaml_string(s));
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_value(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&yaml_string(k));
                out.push_str(": ");
                yaml_value(x, out);
            }
            out.push('}');
        }
    }
}

/// A YAML double-quoted scalar: printable ASCII as is (but `"` and `\`), everything else
/// escaped (`\n`, `\t`, `\uXXXX`, `\UXXXXXXXX`).
fn yaml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused() {
        assert!(unsafe_reason("ok\nfine\t }} {%").is_none());
        assert!(unsafe_reason("a {{ b }}").unwrap().contains("`{{`"));
        assert!(unsafe_reason("nul\0").unwrap().contains("U+0000"));
    }

    #[test]
    fn ansible_vars_file_tags_every_string_unsafe_and_escapes_all_but_printable_ascii() {
        let vars = serde_json::json!({
            "V": "2.0 {%raw%} \"q\" \\ {# c",
            "n": 8080,
            "f": 1.5,
            "ok": true,
            "none": null,
            "list": ["a\nb\tc", 1, ["é😀"]],
            "map": {"k": "{% x", "m": {}},
        });
        let text = ansible_vars_file(vars.as_object().unwrap());
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            vec![
                r#""V": !unsafe "2.0 {%raw%} \"q\" \\ {# c""#,
                r#""n": 8080"#,
                r#""f": !!float 1.5"#,
                r#""ok": true"#,
                r#""none": null"#,
                r#""list": [!unsafe "a\nb\tc", 1, [!unsafe "\u00e9\U0001f600"]]"#,
                r#""map": {"k": !unsafe "{% x", "m": {}}"#,
            ]
        );
    }
}
