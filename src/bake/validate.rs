//! `gears validate`: every check of a bake that needs no AWS.

use super::run::{prepare, render_and_validate};
use crate::bake::settings::BakeSettings;
use crate::cancel::Cancel;
use crate::component::file::TemplateFormat;
use crate::context::RunContext;
use crate::error::Error;

/// `gears validate`: the component file, the rendered template (and `packer validate`), and the
/// playbook (`ansible-playbook --syntax-check`) when those tools are installed. Never calls AWS;
/// a version or revision that cannot be found is replaced by a placeholder. Returns the report.
pub async fn validate(
    settings: &BakeSettings,
    ctx: &RunContext,
    cancel: &Cancel,
) -> Result<String, Error> {
    let (component, _, plan) = prepare(settings, ctx, true).await?;
    let packer = crate::bake::packer_use::PackerInUse::read(settings, &component, cancel).await?;
    let (_, verdict) = render_and_validate(settings, (&component, &packer), &plan, cancel).await?;
    let mut report = format!(
        "ok: {} (component {}, {} builder(s), regions {})\n{}",
        component.path.display(),
        component.name,
        plan.builders.len(),
        component
            .regions
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        match packer.format {
            TemplateFormat::Json => "ok: template renders to valid JSON\n".to_owned(),
            TemplateFormat::Hcl2 => format!(
                "ok: template renders to HCL2 ({})\n",
                match packer.version {
                    Some(v) => format!("Packer {v}"),
                    None => "Packer not installed".to_owned(),
                }
            ),
        }
    );
    report.push_str(match verdict {
        Some(_) => "ok: packer validate\n",
        None => "skipped: packer validate (packer is not installed)\n",
    });
    if let Some(a) = &component.ansible {
        let playbook = component.dir.join(&a.playbook);
        let roles: Vec<_> = a.roles.iter().map(|r| component.dir.join(r)).collect();
        report.push_str(
            match crate::ansible::syntax_check(&playbook, &roles, cancel).await? {
                Some(_) => "ok: ansible-playbook --syntax-check\n",
                None => "skipped: ansible-playbook --syntax-check (ansible is not installed)\n",
            },
        );
    }
    Ok(report)
}
