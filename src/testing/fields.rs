//! The fields a serde type reads: a Deserializer that records what `deserialize_struct` is told
//! and stops, so a test can hold a table of documented keys against the type itself.

use serde::de::{self, Deserialize, Visitor};
use std::collections::BTreeSet;
use std::fmt;

/// The field names `T` accepts (after `rename`), as its derived `Deserialize` declares them.
pub(crate) fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut seen = None;
    let _ = T::deserialize(Recorder(&mut seen));
    seen.expect("the type is a struct with derived Deserialize (deserialize_struct was called)")
}

/// Asserts that `table` documents exactly the fields of each section: `(prefix, fields)`, where
/// a key `prefix + field` belongs to the section (the top level has prefix `""`). `table_file`
/// is named in the failure.
pub(crate) fn assert_documented(
    table: &[(&str, &str)],
    sections: &[(&str, &[&str])],
    table_file: &str,
) {
    let own = |prefix: &str, key: &str| {
        key.strip_prefix(prefix)
            .filter(|rest| !rest.contains('.') && !rest.contains('['))
            .map(str::to_owned)
    };
    let mut problems = Vec::new();
    for (prefix, fields) in sections {
        let documented: BTreeSet<String> =
            table.iter().filter_map(|(k, _)| own(prefix, k)).collect();
        let read: BTreeSet<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        for f in read.difference(&documented) {
            problems.push(format!("`{prefix}{f}` is read but not documented"));
        }
        for f in documented.difference(&read) {
            problems.push(format!("`{prefix}{f}` is documented but not read"));
        }
    }
    for (key, meaning) in table {
        if !sections.iter().any(|(p, _)| own(p, key).is_some()) {
            problems.push(format!("`{key}` belongs to no section"));
        }
        if meaning.trim().is_empty() {
            problems.push(format!("`{key}` has no meaning"));
        }
    }
    assert!(
        problems.is_empty(),
        "the key table in {table_file} is out of step with the types:\n  {}\n(then regenerate \
         the reference: {})",
        problems.join("\n  "),
        crate::reference::REGENERATE
    );
}

/// Records the fields of the first struct asked for, then stops the deserialisation.
struct Recorder<'a>(&'a mut Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::{assert_documented, fields_of};

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Two {
        a: u8,
        #[serde(rename = "type")]
        kind: String,
    }

    #[test]
    fn records_the_fields_after_rename() {
        assert_eq!(fields_of::<Two>(), ["a", "type"]);
    }

    #[test]
    #[should_panic(expected = "`type` is read but not documented")]
    fn an_undocumented_field_fails() {
        assert_documented(&[("a", "A.")], &[("", fields_of::<Two>())], "here");
    }
}
