//! The Packer a bake runs, read once per run (`packer version`), and what follows from it: the
//! template's format, the `required_plugins` block, and the plugins to see to before any AWS
//! call.

use super::settings::BakeSettings;
use crate::cancel::Cancel;
use crate::component::file::TemplateFormat;
use crate::component::Component;
use crate::error::Error;
use crate::packer::version::{
    default_format, needed, required_plugins_block, PackerVersion, Plugin,
};

/// The Packer in use and the format its template is rendered in.
#[derive(Debug, Clone)]
pub struct PackerInUse {
    /// `None`: packer is not installed (a `gears validate` or a reuse still work without it).
    pub version: Option<PackerVersion>,
    pub format: TemplateFormat,
    /// Where the format came from, for `--explain`.
    pub format_source: String,
    /// The plugins the template needs on Packer 1.7 and later.
    pub plugins: Vec<Plugin>,
}

impl PackerInUse {
    /// Runs `packer version` and decides the format: the component file's, else the default
    /// of that Packer.
    pub async fn read(
        settings: &BakeSettings,
        component: &Component,
        cancel: &Cancel,
    ) -> Result<Self, Error> {
        let version = crate::packer::setup::read_version(&settings.packer, cancel).await?;
        Ok(Self::decide(version, component))
    }

    /// [`Self::read`] once the version is known (pure).
    pub fn decide(version: Option<PackerVersion>, component: &Component) -> Self {
        let (format, format_source) = match component.template_format {
            Some(f) => (f, component.path.display().to_string()),
            None => (
                default_format(version),
                match version {
                    Some(v) => format!("the default on Packer {v}"),
                    None => "the default without Packer".to_owned(),
                },
            ),
        };
        let ansible_local = component.ansible.is_some() && super::plan::communicates(component);
        PackerInUse {
            version,
            format,
            format_source,
            plugins: needed(ansible_local),
        }
    }

    /// The `packer {}` block for the template: on Packer 1.7 and later, in HCL2.
    pub fn packer_block(&self) -> String {
        match self.version {
            Some(v) if v.has_plugins_block() && self.format == TemplateFormat::Hcl2 => {
                required_plugins_block(&self.plugins)
            }
            _ => String::new(),
        }
    }

    /// Sees to the plugins this Packer needs (`packer init`, the installed check), in `work`.
    pub async fn ensure_plugins(
        &self,
        settings: &BakeSettings,
        work: &std::path::Path,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        crate::packer::setup::ensure_plugins(
            &settings.packer,
            self.version,
            self.format,
            &self.plugins,
            work,
            cancel,
        )
        .await
    }

    /// What the build instance's metadata options will be: `metadata_options` from Packer 1.7
    /// (as `test.imds`), the account's default before, which gears says.
    pub fn imds_note(&self) -> String {
        match self.version {
            Some(v) if v.has_plugins_block() => {
                "as test.imds (metadata_options, Packer 1.7 and later)".to_owned()
            }
            Some(v) => format!("the account's default: Packer {v} has no metadata_options (1.7 and later have), so gears cannot require IMDSv2 on the build instance"),
            None => "as test.imds where Packer has metadata_options (1.7 and later)".to_owned(),
        }
    }

    /// `--explain`'s lines about Packer.
    pub fn explain(&self) -> String {
        let version = match self.version {
            Some(v) => format!("{v}    (packer version)"),
            None => "not installed".to_owned(),
        };
        let mut s = format!("packer             {version}\n");
        s.push_str(&format!(
            "template format    {}    (from {})\n",
            self.format.as_str(),
            self.format_source
        ));
        s.push_str(&format!("build instance IMDS {}\n", self.imds_note()));
        let step = crate::packer::version::plugin_step(self.version, self.format);
        if step.init || step.check {
            s.push_str(&format!(
                "packer plugins     {}    ({})\n",
                self.plugins
                    .iter()
                    .map(|p| format!("{} {}", p.source, p.version))
                    .collect::<Vec<_>>()
                    .join(", "),
                match (step.init, step.check) {
                    (true, true) => "packer init, then checked installed, before any AWS call",
                    (true, false) => "packer init before any AWS call",
                    _ => "checked installed before any AWS call",
                }
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(extra: &str) -> Component {
        crate::component::file::parse(
            std::path::Path::new("gears.yaml"),
            &format!("component: c\nami_regions: [us-east-1]\nbase_ami: {{id: ami-0123456789abcdef0}}\n{extra}"),
        )
        .unwrap()
    }

    #[test]
    fn the_format_and_block_follow_the_packer_and_the_file() {
        let v = |a, b, c| Some(PackerVersion::of(a, b, c));
        let old = PackerInUse::decide(v(1, 6, 6), &component(""));
        assert_eq!(old.format, TemplateFormat::Json);
        assert_eq!(old.packer_block(), "");
        let asked = PackerInUse::decide(v(1, 6, 6), &component("template_format: hcl2\n"));
        assert_eq!(asked.format, TemplateFormat::Hcl2);
        assert_eq!(asked.packer_block(), "", "1.6.6 knows no packer block");
        assert_eq!(asked.format_source, "gears.yaml");
        let new = PackerInUse::decide(v(1, 11, 2), &component(""));
        assert_eq!(new.format, TemplateFormat::Hcl2);
        assert!(new.packer_block().contains("github.com/hashicorp/amazon"));
        assert!(!new.packer_block().contains("ansible"));
        assert!(new.explain().contains("the default on Packer 1.11.2"));
        let json = PackerInUse::decide(v(1, 11, 2), &component("template_format: json\n"));
        assert_eq!(json.packer_block(), "");
        assert!(
            json.explain().contains("checked installed"),
            "{}",
            json.explain()
        );
    }
}
