//! Which Packer gears runs, and what that Packer needs before a build: pure functions over what
//! `packer version` and `packer plugins installed` print (recorded outputs in the tests).
//!
//! - Packer 1.6.6 (Debian's) has every builder and provisioner built in, reads JSON and HCL2
//!   templates, and knows no `packer {}` block.
//! - Packer 1.7 to 1.9 still ship the builders, and read `packer { required_plugins {...} }`;
//!   `packer init` installs what a template asks for.
//! - Packer 1.10 and later ship none: the amazon plugin (and the ansible one) must be installed,
//!   by `packer init` for an HCL2 template, or `packer plugins install ...`.

use crate::component::file::TemplateFormat;

/// A Packer release, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PackerVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl std::fmt::Display for PackerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl PackerVersion {
    pub const fn of(major: u32, minor: u32, patch: u32) -> Self {
        PackerVersion {
            major,
            minor,
            patch,
        }
    }

    /// The first Packer with `packer {}`, `required_plugins`, `packer init` and the amazon
    /// builder's `metadata_options`.
    pub const PLUGINS_BLOCK: PackerVersion = PackerVersion::of(1, 7, 0);
    /// The first Packer that ships no builders or provisioners.
    pub const NO_BUNDLED_PLUGINS: PackerVersion = PackerVersion::of(1, 10, 0);

    /// The version in what `packer version` prints: `Packer v1.6.6`, `Packer v1.11.2` (maybe
    /// followed by "Your version of Packer is out of date! ..."), `Packer v1.12.0-dev`, or the
    /// machine-readable `<ts>,,version,1.6.6`. `None` when there is none.
    pub fn parse(output: &str) -> Option<Self> {
        let re = regex::Regex::new(r"(?m)(?:^Packer v|^\d+,,version,)(\d+)\.(\d+)\.(\d+)")
            .expect("valid regex");
        let c = re.captures(output)?;
        let n = |i: usize| c[i].parse::<u32>().ok();
        Some(PackerVersion::of(n(1)?, n(2)?, n(3)?))
    }

    /// Whether this Packer reads a `packer { required_plugins {...} }` block and has `packer init`.
    pub fn has_plugins_block(self) -> bool {
        self >= Self::PLUGINS_BLOCK
    }

    /// Whether this Packer ships without builders (plugins must be installed).
    pub fn ships_no_plugins(self) -> bool {
        self >= Self::NO_BUNDLED_PLUGINS
    }
}

/// The format gears renders when the component file does not say: HCL2 where Packer reads
/// `required_plugins` (1.7 and later), JSON before (and when Packer's version is unknown:
/// no Packer is installed, as for a `gears validate` without it).
pub fn default_format(version: Option<PackerVersion>) -> TemplateFormat {
    match version {
        Some(v) if v.has_plugins_block() => TemplateFormat::Hcl2,
        _ => TemplateFormat::Json,
    }
}

/// A Packer plugin a template needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Plugin {
    /// Its local name in `required_plugins` (and in the type names: `amazon-ebs`).
    pub name: &'static str,
    /// Where `packer init` and `packer plugins install` find it.
    pub source: &'static str,
    /// The version constraint.
    pub version: &'static str,
}

/// The amazon plugin (amazon-ebs, amazon-chroot). 1.2.0 is the first with the builders' options
/// gears uses on current Packer (`metadata_options`, `ssh_interface = "session_manager"`, spot).
pub const AMAZON: Plugin = Plugin {
    name: "amazon",
    source: "github.com/hashicorp/amazon",
    version: ">= 1.2.0",
};

/// The ansible plugin (ansible-local).
pub const ANSIBLE: Plugin = Plugin {
    name: "ansible",
    source: "github.com/hashicorp/ansible",
    version: ">= 1.1.0",
};

impl Plugin {
    /// The command that installs it.
    pub fn install_command(&self) -> String {
        format!("packer plugins install {}", self.source)
    }
}

/// What to do about plugins before a build, on this Packer with this template format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginStep {
    /// Run `packer init` on the `required_plugins` block (HCL2, Packer 1.7 and later).
    pub init: bool,
    /// Check `packer plugins installed` and stop, naming the install command, when one is
    /// missing (Packer 1.10 and later, which ship none).
    pub check: bool,
}

/// Decides [`PluginStep`]: nothing on Packer before 1.7 or an unknown Packer; `packer init` for
/// HCL2 from 1.7; from 1.10 (no bundled plugins) also the check, which is all a JSON template
/// can have (`packer init` reads only HCL2).
pub fn plugin_step(version: Option<PackerVersion>, format: TemplateFormat) -> PluginStep {
    let Some(v) = version else {
        return PluginStep {
            init: false,
            check: false,
        };
    };
    PluginStep {
        init: format == TemplateFormat::Hcl2 && v.has_plugins_block(),
        check: v.ships_no_plugins(),
    }
}

/// The plugins gears' templates use: amazon always, ansible when `ansible-local` runs.
pub fn needed(ansible_local: bool) -> Vec<Plugin> {
    let mut p = vec![AMAZON];
    if ansible_local {
        p.push(ANSIBLE);
    }
    p
}

/// The `packer { required_plugins {...} }` block naming `plugins` (HCL2, Packer 1.7 and later).
pub fn required_plugins_block(plugins: &[Plugin]) -> String {
    let mut s = String::from("packer {\n  required_plugins {\n");
    for p in plugins {
        s.push_str(&format!(
            "    {} = {{\n      source  = \"{}\"\n      version = \"{}\"\n    }}\n",
            p.name, p.source, p.version
        ));
    }
    s.push_str("  }\n}\n");
    s
}

/// Which of `wanted` are not in what `packer plugins installed` printed: one binary path a line,
/// `.../github.com/hashicorp/amazon/packer-plugin-amazon_v1.3.3_x5.0_linux_amd64` (or the
/// machine-readable `<ts>,,ui,message,<path>` of the same).
pub fn missing(installed: &str, wanted: &[Plugin]) -> Vec<Plugin> {
    let paths: Vec<&str> = installed
        .lines()
        .map(|l| match l.split_once(",ui,message,") {
            Some((_, path)) => path,
            None => l,
        })
        .map(str::trim)
        .collect();
    wanted
        .iter()
        .filter(|p| {
            let binary = format!("/packer-plugin-{}_", p.name);
            let dir = format!("{}/", p.source);
            !paths
                .iter()
                .any(|path| path.contains(&dir) && path.contains(&binary))
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `packer version` printed: Debian's 1.6.6, HashiCorp's 1.11.2 with the out-of-date
    /// notice (CHECKPOINT_DISABLE unset), a development build, and the machine-readable form.
    #[test]
    fn versions_of_recorded_outputs() {
        assert_eq!(
            PackerVersion::parse("Packer v1.6.6\n"),
            Some(PackerVersion::of(1, 6, 6))
        );
        let current = "Packer v1.11.2\n\nYour version of Packer is out of date! The latest version\nis 1.14.3. You can update by downloading from www.packer.io/downloads\n";
        assert_eq!(
            PackerVersion::parse(current),
            Some(PackerVersion::of(1, 11, 2))
        );
        assert_eq!(
            PackerVersion::parse("Packer v1.16.0-dev\n"),
            Some(PackerVersion::of(1, 16, 0))
        );
        assert_eq!(
            PackerVersion::parse("1795370768,,version,1.6.6\n1795370768,,version-prelease,\n"),
            Some(PackerVersion::of(1, 6, 6))
        );
        assert_eq!(PackerVersion::parse("is 1.14.3. You can update"), None);
        assert_eq!(PackerVersion::parse(""), None);
        assert!(PackerVersion::of(1, 10, 0) > PackerVersion::of(1, 9, 9));
        assert_eq!(PackerVersion::of(1, 11, 2).to_string(), "1.11.2");
    }

    #[test]
    fn the_format_defaults_to_hcl2_from_packer_1_7() {
        use TemplateFormat::*;
        assert_eq!(default_format(None), Json);
        assert_eq!(default_format(Some(PackerVersion::of(1, 6, 6))), Json);
        assert_eq!(default_format(Some(PackerVersion::of(1, 7, 0))), Hcl2);
        assert_eq!(default_format(Some(PackerVersion::of(1, 11, 2))), Hcl2);
    }

    #[test]
    fn plugin_steps_per_version_and_format() {
        use TemplateFormat::*;
        let step = |v: Option<(u32, u32, u32)>, f| {
            let s = plugin_step(v.map(|(a, b, c)| PackerVersion::of(a, b, c)), f);
            (s.init, s.check)
        };
        assert_eq!(step(None, Hcl2), (false, false));
        assert_eq!(step(Some((1, 6, 6)), Hcl2), (false, false));
        assert_eq!(step(Some((1, 6, 6)), Json), (false, false));
        assert_eq!(step(Some((1, 7, 0)), Hcl2), (true, false));
        assert_eq!(step(Some((1, 9, 4)), Json), (false, false));
        assert_eq!(step(Some((1, 10, 0)), Json), (false, true));
        assert_eq!(step(Some((1, 11, 2)), Hcl2), (true, true));
    }

    /// What `packer plugins installed` printed on Packer 1.11.2: nothing at first, then the
    /// amazon plugin after `packer plugins install github.com/hashicorp/amazon`.
    #[test]
    fn missing_plugins_from_recorded_listings() {
        let wanted = needed(true);
        assert_eq!(missing("", &wanted), vec![AMAZON, ANSIBLE]);
        let amazon_only = "/root/.config/packer/plugins/github.com/hashicorp/amazon/packer-plugin-amazon_v1.3.3_x5.0_linux_amd64\n";
        assert_eq!(missing(amazon_only, &wanted), vec![ANSIBLE]);
        assert!(missing(amazon_only, &needed(false)).is_empty());
        let both = format!("{amazon_only}/root/.config/packer/plugins/github.com/hashicorp/ansible/packer-plugin-ansible_v1.1.2_x5.0_linux_amd64\n");
        assert!(missing(&both, &wanted).is_empty());
        let machine = "1795370768,,ui,message,/home/ci/.packer.d/plugins/github.com/hashicorp/amazon/packer-plugin-amazon_v1.2.8_x5.0_linux_amd64\n";
        assert!(missing(machine, &needed(false)).is_empty());
        // Another publisher's plugin of the same name is not HashiCorp's.
        let fork = "/root/.config/packer/plugins/github.com/someone/amazon/packer-plugin-amazon_v0.1.0_x5.0_linux_amd64\n";
        assert_eq!(missing(fork, &needed(false)), vec![AMAZON]);
        assert_eq!(
            required_plugins_block(&[AMAZON]),
            "packer {\n  required_plugins {\n    amazon = {\n      source  = \"github.com/hashicorp/amazon\"\n      version = \">= 1.2.0\"\n    }\n  }\n}\n"
        );
        assert_eq!(
            AMAZON.install_command(),
            "packer plugins install github.com/hashicorp/amazon"
        );
    }
}
