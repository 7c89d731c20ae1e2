//! Values as HCL2 literals, for the HCL2 templates (the tera filter `hcl`): what
//! `json_encode()` is to the JSON templates. A string keeps every character: `\` and `"` are
//! escaped, control characters written as escapes, and HCL2's own template syntax escaped
//! (`${` as `$${`, `%{` as `%%{`), so Packer's HCL2 reader gives back the exact value.
//! (Packer then still runs its Go template engine over strings: `{{` was refused before, see
//! `quote`.)

use serde_json::Value;
use std::collections::HashMap;

/// An HCL2 quoted string holding exactly `s`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `v` as an HCL2 expression: strings quoted, lists `[...]`, maps `{ "key" = value, ... }`
/// (keys quoted, so `gears:run-id` is a key like any other).
pub fn encode(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(a) => format!("[{}]", a.iter().map(encode).collect::<Vec<_>>().join(", ")),
        Value::Object(m) if m.is_empty() => "{}".to_owned(),
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, x)| format!("{} = {}", string(k), encode(x)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The tera filter `hcl`.
pub fn filter(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(encode(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_keep_every_character() {
        assert_eq!(string("plain"), r#""plain""#);
        assert_eq!(string("a \"q\" \\ b\nc\td\r"), r#""a \"q\" \\ b\nc\td\r""#);
        assert_eq!(
            string("${HOME} %{if} $x %x {{ .Foo }}"),
            r#""$${HOME} %%{if} $x %x {{ .Foo }}""#
        );
        // An escape already written stays the user's text: `$${` arrives as `$${`.
        assert_eq!(string("$${x}"), r#""$$${x}""#);
        assert_eq!(string("bell\u{7} é😀"), "\"bell\\u0007 é😀\"");
    }

    #[test]
    fn lists_and_maps() {
        assert_eq!(
            encode(&json!(["a", 1, true, null])),
            r#"["a", 1, true, null]"#
        );
        assert_eq!(
            encode(&json!({"gears:run-id": "r", "Name": "${x}"})),
            r#"{ "gears:run-id" = "r", "Name" = "$${x}" }"#
        );
        assert_eq!(encode(&json!({})), "{}");
        assert_eq!(encode(&json!([])), "[]");
    }
}
