//! `validate_json`: a small JSON-Schema validator with the semantics of validictory, the
//! library Smolder uses (draft-3 style, properties required by default unless
//! `"required": false`). A draft-4 style `"required": [..]` list on an object is honoured too:
//! then only the listed properties are required.

use serde_json::Value;

/// Checks `value` against `schema`; the error says where and why it does not match.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "any" => true,
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        other => type_name(v) == other,
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "the document".to_owned()
    } else {
        format!("`{path}`")
    }
}

/// One schema as a JSON object: its keywords.
type Keywords = serde_json::Map<String, Value>;

/// Checks `v` at `path` against one schema: its type and enum, then the keywords of `v`'s kind.
fn check(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    check_type(s, v, path)?;
    check_enum(s, v, path)?;
    if let Some(n) = v.as_f64() {
        check_number(s, n, path)?;
    }
    if let Some(text) = v.as_str() {
        check_string(s, text, path)?;
    }
    if let Value::Array(items) = v {
        check_array(s, items, path)?;
    }
    if let Value::Object(map) = v {
        check_object(s, map, path)?;
    }
    Ok(())
}

/// `type`: a type name, or a list of type names and schemas of which one must match.
fn check_type(s: &Keywords, v: &Value, path: &str) -> Result<(), String> {
    let Some(t) = s.get("type") else {
        return Ok(());
    };
    let ok = match t {
        Value::String(t) => is_type(v, t),
        Value::Array(ts) => ts.iter().any(|t| match t {
            Value::String(t) => is_type(v, t),
            sub => check(sub, v, path).is_ok(),
        }),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(format!(
        "{} is {} {}, expected type {}",
        at(path),
        if type_name(v) == "integer" || type_name(v) == "array" || type_name(v) == "object" {
            "an"
        } else {
            "a"
        },
        type_name(v),
        t
    ))
}

/// `enum`: the value is one of those listed.
fn check_enum(s: &Keywords, v: &Value, path: &str) -> Result<(), String> {
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(v) {
            return Err(format!(
                "{} is {v}, not one of {}",
                at(path),
                Value::Array(options.clone())
            ));
        }
    }
    Ok(())
}

/// `minimum` and `maximum` of a number, with their `exclusive…` flags.
fn check_number(s: &Keywords, n: f64, path: &str) -> Result<(), String> {
    let exclusive = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        if n < min || (exclusive("exclusiveMinimum") && n == min) {
            return Err(format!("{} is {n}, below the minimum {min}", at(path)));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        if n > max || (exclusive("exclusiveMaximum") && n == max) {
            return Err(format!("{} is {n}, above the maximum {max}", at(path)));
        }
    }
    Ok(())
}

/// `minLength`, `maxLength` (in characters) and `pattern` of a string.
fn check_string(s: &Keywords, text: &str, path: &str) -> Result<(), String> {
    let len = text.chars().count() as u64;
    if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
        if len < min {
            return Err(format!("{} is shorter than {min} characters", at(path)));
        }
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            return Err(format!("{} is longer than {max} characters", at(path)));
        }
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(p) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => return Err(format!("{} does not match the pattern `{p}`", at(path))),
            Err(_) => {
                return Err(format!(
                    "the schema's pattern `{p}` is not a valid regular expression"
                ))
            }
        }
    }
    Ok(())
}

/// `minItems`, `maxItems`, `uniqueItems` of an array, and its `items` (one schema for all, or a
/// tuple of schemas).
fn check_array(s: &Keywords, items: &[Value], path: &str) -> Result<(), String> {
    if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
        if (items.len() as u64) < min {
            return Err(format!("{} has fewer than {min} items", at(path)));
        }
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
        if (items.len() as u64) > max {
            return Err(format!("{} has more than {max} items", at(path)));
        }
    }
    if s.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        for (i, a) in items.iter().enumerate() {
            if items[..i].contains(a) {
                return Err(format!("{} has duplicate items", at(path)));
            }
        }
    }
    match s.get("items") {
        Some(Value::Array(tuple)) => {
            for (i, (sub, item)) in tuple.iter().zip(items).enumerate() {
                check(sub, item, &join(path, &i.to_string()))?;
            }
        }
        Some(sub) => {
            for (i, item) in items.iter().enumerate() {
                check(sub, item, &join(path, &i.to_string()))?;
            }
        }
        None => {}
    }
    Ok(())
}

/// `properties` and `additionalProperties` of an object, and a draft-4 `required` list.
fn check_object(s: &Keywords, map: &Keywords, path: &str) -> Result<(), String> {
    let required_list: Option<Vec<&str>> = match s.get("required") {
        Some(Value::Array(names)) => Some(names.iter().filter_map(Value::as_str).collect()),
        _ => None,
    };
    if let Some(Value::Object(props)) = s.get("properties") {
        check_properties(props, required_list.as_deref(), map, path)?;
        if let Some(extra) = s.get("additionalProperties") {
            check_additional(props, extra, map, path)?;
        }
    }
    if let Some(list) = &required_list {
        if s.get("properties").is_none() {
            if let Some(missing) = list.iter().find(|n| !map.contains_key(**n)) {
                return Err(format!(
                    "required field `{}` is missing",
                    join(path, missing)
                ));
            }
        }
    }
    Ok(())
}

/// Each property of the schema: checked when present; when missing, an error if required (by
/// the draft-4 `required` list when there is one, else unless `"required": false`).
fn check_properties(
    props: &Keywords,
    required_list: Option<&[&str]>,
    map: &Keywords,
    path: &str,
) -> Result<(), String> {
    for (name, sub) in props {
        match map.get(name) {
            Some(child) => check(sub, child, &join(path, name))?,
            None => {
                let required = match required_list {
                    Some(list) => list.contains(&name.as_str()),
                    None => sub.get("required").and_then(Value::as_bool).unwrap_or(true),
                };
                if required {
                    return Err(format!("required field `{}` is missing", join(path, name)));
                }
            }
        }
    }
    Ok(())
}

/// `additionalProperties`: the fields the schema does not list are refused (`false`) or checked
/// against its schema.
fn check_additional(
    props: &Keywords,
    extra: &Value,
    map: &Keywords,
    path: &str,
) -> Result<(), String> {
    for (name, child) in map {
        if props.contains_key(name) {
            continue;
        }
        match extra {
            Value::Bool(false) => {
                return Err(format!(
                    "`{}` is not allowed by the schema",
                    join(path, name)
                ))
            }
            Value::Object(_) => check(extra, child, &join(path, name))?,
            _ => {}
        }
    }
    Ok(())
}

const TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "object", "array", "null", "any",
];

/// Checks that `schema` is a schema validictory would accept: a mapping whose keywords have the
/// right shapes (`type` a type name or a list of them, `properties` a mapping of schemas, ...).
/// Smolder fails every body against a malformed schema; gears refuses the file.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    check_shape(schema, "schema")
}

/// Checks one schema at `at` (a path in the file, for the error): a mapping whose `type`,
/// sub-schemas and other keywords have the shapes validictory needs.
fn check_shape(schema: &Value, at: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Err(format!(
            "{at} must be a mapping (a JSON schema like {{type: object}}), got {schema}"
        ));
    };
    check_type_shape(s, at)?;
    check_subschemas(s, at)?;
    check_keyword_shapes(s, at)
}

/// `type`: a type name or a schema, or a list of them.
fn check_type_shape(s: &Keywords, at: &str) -> Result<(), String> {
    let type_ok = |t: &Value| match t {
        Value::String(name) => TYPES.contains(&name.as_str()),
        Value::Object(_) => check_shape(t, at).is_ok(),
        _ => false,
    };
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::Array(ts) => ts.iter().all(type_ok),
            t => type_ok(t),
        };
        if !ok {
            return Err(format!(
                "{at}: `type` must be one of {} (or a list of them), got {t}",
                TYPES.join(", ")
            ));
        }
    }
    Ok(())
}

/// The schemas inside this one: `properties`, `items` and `additionalProperties`.
fn check_subschemas(s: &Keywords, at: &str) -> Result<(), String> {
    if let Some(p) = s.get("properties") {
        let Some(props) = p.as_object() else {
            return Err(format!(
                "{at}: `properties` must be a mapping of names to schemas, got {p}"
            ));
        };
        for (name, sub) in props {
            check_shape(sub, &format!("{at}.properties.{name}"))?;
        }
    }
    match s.get("items") {
        None => {}
        Some(Value::Array(subs)) => {
            for (i, sub) in subs.iter().enumerate() {
                check_shape(sub, &format!("{at}.items[{i}]"))?;
            }
        }
        Some(sub) => check_shape(sub, &format!("{at}.items"))?,
    }
    match s.get("additionalProperties") {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(sub) => check_shape(sub, &format!("{at}.additionalProperties")),
    }
}

/// `required`, `enum`, the numeric limits and `pattern`.
fn check_keyword_shapes(s: &Keywords, at: &str) -> Result<(), String> {
    match s.get("required") {
        None | Some(Value::Bool(_)) => {}
        Some(Value::Array(names)) if names.iter().all(Value::is_string) => {}
        Some(r) => {
            return Err(format!(
                "{at}: `required` must be true, false or a list of names, got {r}"
            ))
        }
    }
    if let Some(e) = s.get("enum") {
        if !e.is_array() {
            return Err(format!("{at}: `enum` must be a list, got {e}"));
        }
    }
    for k in ["minimum", "maximum"] {
        if let Some(v) = s.get(k).filter(|v| !v.is_number()) {
            return Err(format!("{at}: `{k}` must be a number, got {v}"));
        }
    }
    for k in ["minLength", "maxLength", "minItems", "maxItems"] {
        if let Some(v) = s.get(k).filter(|v| !v.is_u64()) {
            return Err(format!("{at}: `{k}` must be a whole number, got {v}"));
        }
    }
    if let Some(p) = s.get("pattern") {
        match p.as_str().map(regex::Regex::new) {
            Some(Ok(_)) => {}
            _ => {
                return Err(format!(
                    "{at}: `pattern` must be a valid regular expression, got {p}"
                ))
            }
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}/{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn properties_are_required_by_default_like_validictory() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        assert!(validate(&s, &json!({"a": "x"})).is_ok());
        assert_eq!(
            validate(&s, &json!({})).unwrap_err(),
            "required field `a` is missing"
        );
        let optional = json!({"properties": {"a": {"type": "string", "required": false}}});
        assert!(validate(&optional, &json!({})).is_ok());
    }

    #[test]
    fn draft4_required_list_is_honoured() {
        let s = json!({"properties": {"a": {}, "b": {}}, "required": ["a"]});
        assert!(validate(&s, &json!({"a": 1})).is_ok());
        assert!(validate(&s, &json!({"b": 1})).is_err());
    }

    #[test]
    fn nested_types_and_items() {
        let s = json!({"type": "object", "properties": {"slides": {"type": "array", "items": {"type": "object", "properties": {"title": {"type": "string"}}}}}});
        assert!(validate(&s, &json!({"slides": [{"title": "x"}]})).is_ok());
        let e = validate(&s, &json!({"slides": [{"title": 3}]})).unwrap_err();
        assert_eq!(
            e,
            "`slides/0/title` is an integer, expected type \"string\""
        );
    }

    #[test]
    fn malformed_schemas_are_refused() {
        for bad in [
            json!("not a schema"),
            json!({"type": "strnig"}),
            json!({"properties": {"a": 1}}),
            json!({"items": [1]}),
            json!({"required": "yes"}),
            json!({"minLength": -1}),
            json!({"pattern": "("}),
        ] {
            assert!(check_schema(&bad).is_err(), "{bad}");
        }
        let good = json!({"type": ["string", {"type": "null"}], "properties": {"a": {"required": false}}, "items": {}, "required": ["a"]});
        assert_eq!(check_schema(&good), Ok(()));
    }

    #[test]
    fn numbers_strings_enums() {
        assert!(validate(&json!({"minimum": 2}), &json!(1)).is_err());
        assert!(validate(&json!({"maximum": 2}), &json!(2)).is_ok());
        assert!(validate(&json!({"pattern": "^a"}), &json!("ba")).is_err());
        assert!(validate(&json!({"enum": [1, 2]}), &json!(3)).is_err());
        assert!(validate(&json!({"type": ["string", "null"]}), &json!(null)).is_ok());
        assert!(validate(&json!({"type": "integer"}), &json!(1.5)).is_err());
    }
}
