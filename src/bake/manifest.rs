//! The bake's artifact for the next stages: a JSON manifest and an env-style file that GoCD and
//! Jenkins can source.

use super::quote::shell_quote;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a bake produced (or found already baked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
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
    /// True when an earlier bake of the same component, version and sha was reused.
    pub reused: bool,
    /// AMI id per builder, then per region.
    pub amis: BTreeMap<String, BTreeMap<String, String>>,
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
    /// The manifest of a plan's AMIs: baked now (with packer's run id) or reused (without).
    pub fn of(
        plan: &super::plan::BakePlan,
        base_ami: &str,
        amis: BTreeMap<String, BTreeMap<String, String>>,
        packer_run_uuid: Option<String>,
    ) -> Self {
        Manifest {
            component: plan.component.clone(),
            version: plan.version.clone(),
            git_sha: plan.git_sha.clone(),
            repo: plan.repo.clone(),
            created_at: plan.created_at.clone(),
            ami_version: plan.ami_version.clone(),
            base_ami: base_ami.to_owned(),
            run_id: plan.run_id.clone(),
            reused: packer_run_uuid.is_none(),
            packer_run_uuid,
            amis,
        }
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
        // The first builder's AMIs also under the short name GEARS_AMI_<REGION>.
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
        for (builder, regions) in &self.amis {
            for (region, ami) in regions {
                out.push_str(&format!("{region}\t{builder}\t{ami}\n"));
            }
        }
        out
    }

    /// Writes the manifest and, beside it, the env file (same name, `.env` extension).
    pub fn write(&self, path: &Path) -> Result<std::path::PathBuf, crate::error::Error> {
        let w = |p: &Path, text: String| {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::write(p, text).map_err(|e| crate::error::Error::Write {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_is_sourceable_and_exact() {
        let m = Manifest {
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
            amis: BTreeMap::from([(
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
