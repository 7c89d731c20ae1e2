//! Where a key is in the component file: the line and column of the key at a path
//! (`builders`, `1`, `root_volume`, `type`), found by walking the document as serde_yaml reads
//! it, so that a key of the same name elsewhere (the component's own, another builder's) is
//! never taken for it. A key the walk does not find (a check that names a key without its
//! path) falls back to the first `key:` in the text.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The message of the error the walk stops with at the key: serde_yaml gives it the key's
/// line and column.
const HERE: &str = "gears: the key looked for";

/// The 1-based line and column of the key at `path` in `source` (a number is a list's index),
/// else of the first `key:` of its last part; (0, 0) when neither is found.
pub(super) fn key_place(source: &str, path: &[String]) -> (usize, usize) {
    let Some(leaf) = path.last() else {
        return (0, 0);
    };
    let found = Walk(path).deserialize(serde_yaml::Deserializer::from_str(source));
    match found {
        // serde_yaml puts the path before the message (`builders[1]: ...`).
        Err(e) if e.to_string().contains(HERE) => e
            .location()
            .map_or_else(|| first_key(source, leaf), |l| (l.line(), l.column())),
        _ => first_key(source, leaf),
    }
}

/// The 1-based line and column of the first `key:` in `source`.
fn first_key(source: &str, key: &str) -> (usize, usize) {
    let re = regex::Regex::new(&format!(
        r#"(?:^|[\s{{,])["']?({})["']?\s*:"#,
        regex::escape(key)
    ))
    .expect("valid regex");
    for (i, line) in source.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(m) = re.captures(line).and_then(|c| c.get(1)) {
            return (i + 1, line[..m.start()].chars().count() + 1);
        }
    }
    (0, 0)
}

/// Walks down `path`; at its last key, stops with [`HERE`]; anything else is passed over.
struct Walk<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a component file")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let Some((want, rest)) = self.0.split_first() else {
            return Ok(());
        };
        while let Some(key) = m.next_key_seed(Key(rest.is_empty().then_some(want)))? {
            if key == *want {
                return m.next_value_seed(Walk(rest));
            }
            m.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let Some((want, rest)) = self.0.split_first() else {
            return Ok(());
        };
        let Ok(want) = want.parse::<usize>() else {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        for _ in 0..want {
            if s.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        s.next_element_seed(Walk(rest))?;
        while s.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// A map's key as text; stops with [`HERE`] when it is the one looked for. (A key that is not
/// text, or a scalar on the path, ends the walk with serde's own error: not found.)
struct Key<'a>(Option<&'a String>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        // As text whatever it resolves to (`2024`, `true`, `~`): serde_yaml reads a tag key so.
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        match self.0 {
            Some(want) if want == v => Err(E::custom(HERE)),
            _ => Ok(v.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(source: &str, path: &[&str]) -> (usize, usize) {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        key_place(source, &path)
    }

    #[test]
    fn a_key_is_found_at_its_path_not_at_an_earlier_one_of_the_same_name() {
        let src = "builders:\n  - type: amazon-ebs\n    instance_type: a\n  - {type: amazon-ebs, name: b, instance_type: b, root_volume: {type: gp3}}\ninstance_type: c\n";
        assert_eq!(at(src, &["instance_type"]), (5, 1));
        assert_eq!(at(src, &["builders", "0", "instance_type"]), (3, 5));
        assert_eq!(at(src, &["builders", "1", "instance_type"]), (4, 33));
        assert_eq!(at(src, &["builders", "1", "root_volume", "type"]), (4, 65));
        // Not at that path: the first `key:` in the text, as before.
        assert_eq!(at(src, &["builders", "2", "instance_type"]), (3, 5));
        assert_eq!(at(src, &["nowhere"]), (0, 0));
        assert_eq!(at("a: [1, {b: 2}]\n", &["a", "1", "b"]), (1, 9));
        // Keys that would resolve to a number, a bool or null are walked past as text.
        let tags = "tags: {Owner: a}\nbuilders:\n  - tags: {2024: y, true: n, ~: z, Owner: b}\n";
        assert_eq!(at(tags, &["builders", "0", "tags", "Owner"]), (3, 36));
    }

    /// A builder's setting is refused at the builder's own key, not at the component's key of
    /// the same name nor at an earlier builder's.
    #[test]
    fn a_builders_bad_setting_is_placed_at_its_own_key() {
        let src = "component: hello\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\nssh_cidrs: [10.0.0.0/8]\nroot_volume: {type: gp3}\nbuilders:\n  - type: amazon-ebs\n    name: a\n    ssh_cidrs: [10.1.0.0/16]\n    root_volume: {type: gp3}\n  - type: amazon-ebs\n    name: b\n    ssh_cidrs: [10.0.0.0/33]\n";
        let parse = |s: &str| super::super::parse(std::path::Path::new("gears.yaml"), s);
        let e = parse(src).unwrap_err();
        assert!(e.message.contains("10.0.0.0/33"), "{e}");
        assert_eq!((e.line, e.column), (13, 5), "{e}");
        let src = src.replace("10.0.0.0/33", "10.2.0.0/16") + "    root_volume: {type: gp9}\n";
        let e = parse(&src).unwrap_err();
        assert!(e.message.contains("gp9"), "{e}");
        assert_eq!((e.line, e.column), (14, 19), "{e}");
        // The component's own is placed at the component's key, after the builders'.
        let src = src
            .replace("gp9", "gp2")
            .replace("[10.0.0.0/8]", "[10.0.0.0/99]");
        let e = parse(&src).unwrap_err();
        assert_eq!((e.line, e.column), (4, 1), "{e}");
    }

    /// An amazon-chroot builder's own `instance_type` (it launches no build instance) is
    /// refused at that builder's key, past the component's and an amazon-ebs builder's.
    #[test]
    fn a_chroot_builders_own_instance_type_is_refused_at_its_key() {
        let src = "component: hello\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\ninstance_type: t3.large\nbuilders:\n  - {type: amazon-ebs, name: web, instance_type: t3.small}\n  - {type: amazon-chroot, name: agent, instance_type: t3.small}\n";
        let e = super::super::parse(std::path::Path::new("gears.yaml"), src).unwrap_err();
        assert_eq!(e.message, "builder `agent` is amazon-chroot, which launches no build instance: `instance_type` is for amazon-ebs builders");
        assert_eq!((e.line, e.column), (7, 40), "{e}");
    }
}
