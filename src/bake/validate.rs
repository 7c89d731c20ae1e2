//! `gears validate`: every check of a bake that needs no AWS.

use super::run::{prepare, render_and_validate};
use crate::context::RunContext;
use crate::error::{Error, InputError};
use crate::settings::BakeSettings;

/// `gears validate`: the component file, the rendered template (and `packer validate`), and the
/// playbook (`ansible-playbook --syntax-check`) when those tools are installed. Never calls AWS;
/// a version or revision that cannot be found is replaced by a placeholder. Returns the report.
pub async fn validate(settings: &BakeSettings, ctx: &RunContext) -> Result<String, Error> {
    let (component, _, plan) = prepare(settings, ctx, true)?;
    let (_, verdict) = render_and_validate(settings, &component, &plan).await?;
    let mut report =
        format!(
        "ok: {} (component {}, {} builder(s), regions {})\nok: template renders to valid JSON\n",
        component.path.display(),
        component.name,
        plan.builders.len(),
        component.regions.iter().map(|r| r.0.as_str()).collect::<Vec<_>>().join(", ")
    );
    report.push_str(match verdict {
        Some(_) => "ok: packer validate\n",
        None => "skipped: packer validate (packer is not installed)\n",
    });
    if let Some(a) = &component.ansible {
        let playbook = component.dir.join(&a.playbook);
        let roles: Vec<String> = a
            .roles
            .iter()
            .map(|r| component.dir.join(r).display().to_string())
            .collect();
        let o = tokio::process::Command::new("ansible-playbook")
            .args(["--syntax-check", "-i", "localhost,"])
            .arg(&playbook)
            .env("ANSIBLE_ROLES_PATH", roles.join(":"))
            .env("ANSIBLE_NOCOLOR", "1")
            .output()
            .await;
        match o {
            Err(_) => report
                .push_str("skipped: ansible-playbook --syntax-check (ansible is not installed)\n"),
            Ok(o) if o.status.success() => report.push_str("ok: ansible-playbook --syntax-check\n"),
            Ok(o) => {
                return Err(InputError::whole_file(
                    playbook.display().to_string(),
                    format!(
                        "ansible-playbook --syntax-check failed:\n{}{}",
                        String::from_utf8_lossy(&o.stdout).trim(),
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                )
                .into())
            }
        }
    }
    Ok(report)
}
