//! What `gears amis list` and `prune` are asked ([`AmisAsk`]) and the settings they run with,
//! resolved by [`AmisSettings::resolve`]: the component file's name and regions, unless regions
//! are named, and the accounts of its `accounts:` whose use of the AMIs counts.

/// What `gears amis` needs.
#[derive(Debug, Clone)]
pub struct AmisSettings {
    /// The component's name (its AMIs' `gears:component` and `COMPONENT_NAME` tags).
    pub component: String,
    pub regions: Vec<String>,
    pub endpoint_flag: Option<String>,
    /// The account whose AMIs these are, through its role (none: the credentials' own).
    pub account: Option<crate::accounts::RoleSession>,
    /// The accounts of `accounts:` (each through its environment's role), where a use of an
    /// AMI counts as much as one in the AMIs' own account.
    pub consumers: Vec<super::Consumer>,
}

/// One `gears amis list` or `prune` as asked: the component file, the regions named.
#[derive(Debug, Clone)]
pub struct AmisAsk {
    pub component_file: std::path::PathBuf,
    pub regions: Vec<String>,
    pub endpoint_url: Option<String>,
    /// The role to act through (`--role-arn`).
    pub role: Option<crate::accounts::Role>,
}

impl AmisSettings {
    /// Resolves the AMIs' settings: the component's name, and its `ami_regions` unless regions
    /// were named.
    pub fn resolve(ask: AmisAsk) -> Result<Self, crate::error::Error> {
        let component = crate::component::load(&ask.component_file)?;
        let regions = if ask.regions.is_empty() {
            component.regions.iter().map(|r| r.0.clone()).collect()
        } else {
            ask.regions
        };
        let account =
            crate::accounts::session("amis", &component.name, ask.role, None, &Default::default());
        Ok(AmisSettings {
            account,
            consumers: super::accounts::consumers(&component.name, &component.accounts),
            component: component.name,
            regions,
            endpoint_flag: ask.endpoint_url,
        })
    }
}
