//! The hand-off between stages: bake writes a JSON manifest (and an env-style file that GoCD and
//! Jenkins can source); `test`, `deploy` and `pipeline` read it back with [`read`].

use crate::error::{Error, InputError};
use crate::text::shell_quote;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest format this gears writes and reads. A manifest of another format is refused
/// with a clear error rather than misread.
pub const FORMAT_VERSION: u32 = 1;
/// Where bake writes the manifest and the later stages read it, unless told otherwise.
pub const DEFAULT_FILE: &str = "gears-manifest.json";

/// AMI ids per builder, in component-file order (a JSON object whose keys keep that order),
/// then per region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Amis(Vec<(String, BTreeMap<String, String>)>);

impl Amis {
    /// No builders yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a builder's AMIs, keeping its first place.
    pub fn insert(&mut self, builder: String, regions: BTreeMap<String, String>) {
        match self.0.iter_mut().find(|(b, _)| *b == builder) {
            Some(slot) => slot.1 = regions,
            None => self.0.push((builder, regions)),
        }
    }

    /// A builder's AMIs per region.
    pub fn get(&self, builder: &str) -> Option<&BTreeMap<String, String>> {
        self.0.iter().find(|(b, _)| b == builder).map(|(_, r)| r)
    }

    /// Builders in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(b, _)| b.as_str())
    }

    /// Each builder's AMIs per region.
    pub fn values(&self) -> impl Iterator<Item = &BTreeMap<String, String>> {
        self.0.iter().map(|(_, r)| r)
    }

    /// (builder, AMIs per region), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &BTreeMap<String, String>)> {
        self.0.iter().map(|(b, r)| (b, r))
    }

    /// How many builders.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No builders.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const N: usize> From<[(String, BTreeMap<String, String>); N]> for Amis {
    fn from(items: [(String, BTreeMap<String, String>); N]) -> Self {
        let mut a = Amis::new();
        for (b, r) in items {
            a.insert(b, r);
        }
        a
    }
}

impl Extend<(String, BTreeMap<String, String>)> for Amis {
    fn extend<I: IntoIterator<Item = (String, BTreeMap<String, String>)>>(&mut self, iter: I) {
        for (b, r) in iter {
            self.insert(b, r);
        }
    }
}

impl Serialize for Amis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (b, r) in &self.0 {
            m.serialize_entry(b, r)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Amis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Amis;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of builder to {region: AMI id}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Amis, A::Error> {
                let mut a = Amis::new();
                while let Some((b, r)) = m.next_entry::<String, BTreeMap<String, String>>()? {
                    a.insert(b, r);
                }
                Ok(a)
            }
        }
        d.deserialize_map(V)
    }
}

/// What a bake produced (or found already baked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the gears that wrote it.
    pub format_version: u32,
    pub component: String,
    pub version: String,
    pub git_sha: String,
    pub repo: String,
    pub created_at: String,
    pub ami_version: String,
    pub base_ami: String,
    /// gears' id of the run that baked the AMIs.
    pub run_id: String,
    /// Packer's run id (`packer_run_uuid`), absent when the AMIs were reused.
    pub packer_run_uuid: Option<String>,
    /// True when an earlier bake of the same component, version and sha was reused; false when
    /// packer built the AMIs in this run.
    pub reused: bool,
    /// AMI id per builder (component-file order), then per region.
    pub amis: Amis,
    /// Who besides the baking account may launch them (the component file's `share:`, read
    /// back from EC2 after the bake or reuse).
    #[serde(default, skip_serializing_if = "crate::accounts::Shares::is_empty")]
    pub shares: crate::accounts::Shares,
    /// The account that owns the AMIs (the baking account), as EC2 answered when they were
    /// shared; absent when they are not shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_account: Option<String>,
    /// The Parameter Store parameter the component's base AMI came from (`base_ami.ssm`): its
    /// name, the version read, and the AMI it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ami_parameter: Option<BaseAmiParameter>,
    /// The parameter each builder's own base AMI came from (`builders[].base_ami.ssm`), by
    /// builder; a builder on the component's base AMI has its parameter in
    /// `base_ami_parameter`. For a reused bake, both are what its AMIs record (none when they
    /// record none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub builder_base_ami_parameters: BTreeMap<String, BaseAmiParameter>,
    /// When the AMIs are deprecated (`deprecate_after`), as set on each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecate_at: Option<String>,
    /// Their deregistration protection (`enabled`, `with-cooldown`), as set on each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistration_protection: Option<String>,
}

/// A base AMI read from Parameter Store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseAmiParameter {
    pub name: String,
    pub version: i64,
    pub ami: String,
}

fn env_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

impl Manifest {
    /// The manifest of AMIs packer built in this run of `plan`, builders in the plan's order.
    pub fn baked(
        plan: &crate::bake::plan::BakePlan,
        base_ami: &str,
        mut amis: BTreeMap<String, BTreeMap<String, String>>,
        packer_run_uuid: Option<String>,
    ) -> Self {
        let mut ordered = Amis::new();
        for b in &plan.builders {
            if let Some(regions) = amis.remove(&b.name) {
                ordered.insert(b.name.clone(), regions);
            }
        }
        // A component's own template may name builders the plan does not know: keep them last.
        ordered.extend(amis);
        Manifest {
            shares: Default::default(),
            owner_account: None,
            base_ami_parameter: None,
            builder_base_ami_parameters: BTreeMap::new(),
            deprecate_at: None,
            deregistration_protection: None,
            format_version: FORMAT_VERSION,
            component: plan.component.clone(),
            version: plan.version.clone(),
            git_sha: plan.git_sha.clone(),
            repo: plan.repo.clone(),
            created_at: plan.created_at.clone(),
            ami_version: plan.ami_version.clone(),
            base_ami: base_ami.to_owned(),
            run_id: plan.run_id.clone(),
            reused: false,
            packer_run_uuid,
            amis: ordered,
        }
    }

    /// The AMIs of the one bake `find` selected, described as that bake: its run id, date, AMI
    /// version and base AMI.
    pub fn reused(
        plan: &crate::bake::plan::BakePlan,
        found: crate::bake::reuse::Reusable,
        base_ami: &str,
    ) -> Self {
        Manifest {
            shares: Default::default(),
            owner_account: None,
            base_ami_parameter: None,
            builder_base_ami_parameters: BTreeMap::new(),
            deprecate_at: None,
            deregistration_protection: None,
            format_version: FORMAT_VERSION,
            component: plan.component.clone(),
            version: plan.version.clone(),
            git_sha: plan.git_sha.clone(),
            repo: plan.repo.clone(),
            created_at: found.created_at,
            ami_version: found.ami_version,
            base_ami: base_ami.to_owned(),
            run_id: found.run_id,
            reused: true,
            packer_run_uuid: None,
            amis: found.amis,
        }
    }

    /// The AMI of `builder` (the first builder when `None`) in `region`.
    pub fn ami(&self, builder: Option<&str>, region: &str) -> Option<&str> {
        let regions = match builder {
            Some(b) => self.amis.get(b)?,
            None => self.amis.values().next()?,
        };
        regions.get(region).map(String::as_str)
    }

    /// The env-style file: `GEARS_*` variables, shell-quoted.
    pub fn env_file(&self) -> String {
        let mut lines = vec![
            ("GEARS_COMPONENT".to_owned(), self.component.clone()),
            ("GEARS_VERSION".to_owned(), self.version.clone()),
            ("GEARS_GIT_SHA".to_owned(), self.git_sha.clone()),
            ("GEARS_REPO".to_owned(), self.repo.clone()),
            ("GEARS_CREATED_AT".to_owned(), self.created_at.clone()),
            ("GEARS_AMI_VERSION".to_owned(), self.ami_version.clone()),
            ("GEARS_BASE_AMI".to_owned(), self.base_ami.clone()),
            ("GEARS_RUN_ID".to_owned(), self.run_id.clone()),
        ];
        // The first builder of the component file also under the short name GEARS_AMI_<REGION>.
        for (i, (builder, regions)) in self.amis.iter().enumerate() {
            for (region, ami) in regions {
                if i == 0 {
                    lines.push((format!("GEARS_AMI_{}", env_name(region)), ami.clone()));
                }
                lines.push((
                    format!("GEARS_AMI_{}_{}", env_name(builder), env_name(region)),
                    ami.clone(),
                ));
            }
        }
        lines
            .iter()
            .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
            .collect()
    }

    /// `region<TAB>builder<TAB>ami` lines for stdout.
    pub fn ami_lines(&self) -> String {
        let mut out = String::new();
        for (builder, regions) in self.amis.iter() {
            for (region, ami) in regions {
                out.push_str(&format!("{region}\t{builder}\t{ami}\n"));
            }
        }
        out
    }

    /// Writes the manifest and, beside it, the env file (same name, `.env` extension).
    pub fn write(&self, path: &Path) -> Result<std::path::PathBuf, Error> {
        let w = |p: &Path, text: String| {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::write(p, text).map_err(|e| Error::Write {
                path: p.display().to_string(),
                source: e,
            })
        };
        w(
            path,
            serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
        )?;
        let env = path.with_extension("env");
        w(&env, self.env_file())?;
        Ok(env)
    }
}

/// Reads a manifest written by `gears bake`: a missing or unreadable file is exit 3 naming it;
/// bad JSON, a missing field or another format version is exit 3 at `file:line:col`.
pub fn read(path: &Path) -> Result<Manifest, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    parse(&path.display().to_string(), &text).map_err(Error::from)
}

/// Parses a manifest's text; `name` is how errors name the file.
pub fn parse(name: &str, text: &str) -> Result<Manifest, InputError> {
    let hint = "the manifest is written by `gears bake`; bake again, or pass the manifest it wrote";
    // The format version first, so a manifest of another gears says so instead of naming a field.
    #[derive(Deserialize)]
    struct Version {
        format_version: Option<serde_json::Value>,
    }
    let v: Version = serde_json::from_str(text).map_err(|e| {
        crate::error::located(name, text, e.line(), e.column(), &e.to_string()).with_hint(hint)
    })?;
    match v.format_version {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(FORMAT_VERSION as u64) => {}
        Some(other) => {
            let (line, col) = key_place(text, "format_version");
            return Err(InputError::at(
                name,
                text,
                line,
                col,
                format!("manifest format_version {other} is not one this gears reads ({FORMAT_VERSION})"),
            )
            .with_hint("use the gears that wrote it, or bake again with this one"));
        }
        None => {
            return Err(InputError::whole_file(
                name,
                "not a gears manifest: it has no format_version",
            )
            .with_hint(hint))
        }
    }
    serde_json::from_str(text).map_err(|e| {
        crate::error::located(name, text, e.line(), e.column(), &e.to_string()).with_hint(hint)
    })
}

/// Line and column of the first `"key"` in a JSON text (1-based), or (0, 0).
fn key_place(text: &str, key: &str) -> (usize, usize) {
    let needle = format!("\"{key}\"");
    text.lines()
        .enumerate()
        .find_map(|(i, l)| l.find(&needle).map(|c| (i + 1, l[..c].chars().count() + 1)))
        .unwrap_or((0, 0))
}

/// The AMIs a stage goes to, chosen once from `--ami`/`--region` or bake's manifest (the same
/// choice for `gears test` and `gears deploy`).
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// Where the choice came from: the manifest's path, or `--ami`.
    pub source: String,
    /// `(region, AMI)`: the region asked for, else every region of the manifest's builder.
    pub targets: Vec<(String, String)>,
    pub version: String,
    pub ami_version: String,
    /// Regions of the component file the manifest has no AMI for (when no region was asked).
    pub missing: Vec<String>,
}

impl Chosen {
    /// The one region a single-instance stage uses: the one asked for, else where the
    /// component builds (its first region) when the manifest has it, else the first listed.
    pub fn one(&self, component: &crate::component::Component) -> (String, String) {
        let first = component.regions.first().map(|r| r.0.as_str());
        self.targets
            .iter()
            .find(|(r, _)| Some(r.as_str()) == first)
            .or(self.targets.first())
            .cloned()
            .unwrap_or_default()
    }
}

impl crate::settings::AmiChoice {
    /// The AMIs of this choice for `component`: the manifest must be the component's, and have
    /// the builder (default: its first) and the region asked for.
    pub fn resolve(&self, component: &crate::component::Component) -> Result<Chosen, Error> {
        let (path, builder, region) = match self {
            crate::settings::AmiChoice::Explicit { ami, region } => {
                return Ok(Chosen {
                    source: "--ami".into(),
                    targets: vec![(region.clone(), ami.clone())],
                    version: String::new(),
                    ami_version: String::new(),
                    missing: Vec::new(),
                })
            }
            crate::settings::AmiChoice::Manifest {
                path,
                builder,
                region,
            } => (path, builder, region),
        };
        let m = read(path)?;
        let name = path.display().to_string();
        if m.component != component.name {
            return Err(InputError::whole_file(
                &name,
                format!(
                    "the manifest is of component `{}`, the component file of `{}`",
                    m.component, component.name
                ),
            )
            .with_hint("pass the manifest bake wrote for this component (--manifest)")
            .into());
        }
        let builders: Vec<&str> = m.amis.keys().collect();
        let b = builder
            .as_deref()
            .or(builders.first().copied())
            .unwrap_or("")
            .to_owned();
        let Some(regions) = m.amis.get(&b) else {
            let why = if m.amis.is_empty() {
                "the manifest has no AMIs (did the bake finish?)".to_owned()
            } else {
                format!("the manifest has no builder `{b}`")
            };
            return Err(InputError::whole_file(&name, why)
                .with_hint(format!("its builders: {}", builders.join(", ")))
                .into());
        };
        let targets: Vec<(String, String)> = regions
            .iter()
            .filter(|(r, _)| region.as_ref().is_none_or(|x| x == *r))
            .map(|(r, a)| (r.clone(), a.clone()))
            .collect();
        if targets.is_empty() {
            let why = match region {
                Some(r) => format!("the manifest has no AMI of builder `{b}` in region `{r}`"),
                None => format!("the manifest has no AMI of builder `{b}` in any region"),
            };
            return Err(InputError::whole_file(&name, why)
                .with_hint(format!(
                    "its regions for `{b}`: {}",
                    regions.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
                .into());
        }
        let missing = match region {
            Some(_) => Vec::new(),
            None => component
                .regions
                .iter()
                .map(|r| r.0.clone())
                .filter(|r| !targets.iter().any(|(t, _)| t == r))
                .collect(),
        };
        Ok(Chosen {
            source: name,
            targets,
            version: m.version,
            ami_version: m.ami_version,
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            shares: Default::default(),
            owner_account: None,
            base_ami_parameter: None,
            builder_base_ami_parameters: BTreeMap::new(),
            deprecate_at: None,
            deregistration_protection: None,
            format_version: FORMAT_VERSION,
            component: "hello".into(),
            version: "1.0".into(),
            git_sha: "abc".into(),
            repo: "r".into(),
            created_at: "202611231200".into(),
            ami_version: "1.0-202611231200".into(),
            base_ami: "ami-1".into(),
            run_id: "run".into(),
            packer_run_uuid: Some("p".into()),
            reused: false,
            amis: Amis::from([
                (
                    "zeta".to_owned(),
                    BTreeMap::from([("us-east-1".to_owned(), "ami-z".to_owned())]),
                ),
                (
                    "alpha".to_owned(),
                    BTreeMap::from([("us-east-1".to_owned(), "ami-a".to_owned())]),
                ),
            ]),
        }
    }

    #[test]
    fn round_trips_keeping_builder_order() {
        let m = sample();
        let text = serde_json::to_string_pretty(&m).unwrap();
        let back = parse("m.json", &text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.amis.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
        assert_eq!(back.ami(None, "us-east-1"), Some("ami-z"));
        assert_eq!(back.ami(Some("alpha"), "us-east-1"), Some("ami-a"));
        assert_eq!(back.ami(Some("alpha"), "eu-west-1"), None);
        // The short name is the first builder of the component file, not the alphabetical first.
        assert!(
            m.env_file().contains("GEARS_AMI_US_EAST_1='ami-z'\n"),
            "{}",
            m.env_file()
        );
    }

    #[test]
    fn bad_manifests_are_located() {
        let e = parse(
            "m.json",
            "{\n  \"format_version\": 1,\n  \"component\": 3\n}",
        )
        .unwrap_err();
        assert_eq!((e.line, e.path.as_str()), (3, "m.json"), "{e}");
        let e = parse("m.json", "{\n  \"format_version\": 7\n}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.contains("format_version 7"), "{e}");
        let e = parse("m.json", "{\"component\": \"x\"}").unwrap_err();
        assert!(e.message.contains("no format_version"), "{e}");
        let e = parse("m.json", "{ not json").unwrap_err();
        assert_eq!(e.line, 1, "{e}");
        let mut text = serde_json::to_value(sample()).unwrap();
        text["colour"] = "x".into();
        let e = parse("m.json", &text.to_string()).unwrap_err();
        assert!(e.message.contains("unknown key `colour`"), "{e}");
    }

    #[test]
    fn reading_a_missing_file_names_it() {
        let e = read(Path::new("/nonexistent/gears-manifest.json")).unwrap_err();
        assert!(e.render().contains("/nonexistent/gears-manifest.json"));
        assert_eq!(e.exit(), crate::exit::Exit::InvalidInput);
    }

    #[test]
    fn env_file_is_sourceable_and_exact() {
        let m = Manifest {
            shares: Default::default(),
            owner_account: None,
            base_ami_parameter: None,
            builder_base_ami_parameters: BTreeMap::new(),
            deprecate_at: None,
            deregistration_protection: None,
            format_version: FORMAT_VERSION,
            component: "hello".into(),
            version: "1.0'; echo pwned".into(),
            git_sha: "abc".into(),
            repo: "r".into(),
            created_at: "202611231200".into(),
            ami_version: "v".into(),
            base_ami: "ami-1".into(),
            run_id: "run".into(),
            packer_run_uuid: None,
            reused: false,
            amis: Amis::from([(
                "ebs-a".into(),
                BTreeMap::from([("us-east-1".into(), "ami-9".into())]),
            )]),
        };
        let env = m.env_file();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{env}\nprintf '%s|%s|%s' \"$GEARS_VERSION\" \"$GEARS_AMI_US_EAST_1\" \"$GEARS_AMI_EBS_A_US_EAST_1\""))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "1.0'; echo pwned|ami-9|ami-9"
        );
        assert_eq!(m.ami_lines(), "us-east-1\tebs-a\tami-9\n");
    }
}
