//! The bake stage: plan → base AMI → reuse check → render → packer → manifest.

use super::manifest::Manifest;
use super::plan::{plan, BakePlan};
use super::template::{ansible_vars_path, render, write_ansible_vars, RenderOptions};
use crate::aws::ec2::Ec2;
use crate::cancel::Cancel;
use crate::component::metadata::{git_in, resolve, Metadata};
use crate::component::Component;
use crate::context::RunContext;
use crate::error::{Error, InputError};
use crate::exit::Exit;
use crate::packer::machine::{Event, UiLevel};
use crate::packer::process::{self, PackerCommand, Progress};
use crate::settings::{BakeSettings, OutputFormat};
use crate::ui::{human_duration, StageProgress};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// `p` made absolute against the current directory: packer runs in the component's folder, so
/// paths handed to it must not depend on where gears was started.
fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The lines of a packer `ui` text worth showing a human: each line without packer's
/// `==> builder:` / `    builder:` prefix, no blank lines, and not the per-tag "Adding tag"
/// chatter (it stays in the log). Errors are marked with `!`.
pub fn progress_lines(level: UiLevel, builder: Option<&str>, text: &str) -> Vec<String> {
    let prefix = builder.map(|b| format!("{b}:"));
    text.lines()
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("==> ").unwrap_or(l);
            let l = match &prefix {
                Some(p) => l.strip_prefix(p.as_str()).unwrap_or(l),
                None => l,
            };
            l.trim().to_owned()
        })
        .filter(|l| !l.is_empty() && !l.starts_with("Adding tag: "))
        .map(|l| {
            if level == UiLevel::Error {
                format!("! {l}")
            } else {
                l
            }
        })
        .collect()
}

/// Runs an AWS call unless the run is cancelled first (the SDK's retries can take a while).
async fn unless_cancelled<T>(
    cancel: &Cancel,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    tokio::select! {
        v = fut => Ok(v),
        _ = cancel.cancelled() => Err(Error::Interrupted(cancel.signal().unwrap_or(crate::cancel::Signal::Int))),
    }
}

/// A fresh run id: `<CREATED_AT>-<6 hex>`.
pub fn new_run_id(created_at: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = (nanos ^ std::process::id().rotate_left(16)) & 0xff_ffff;
    format!("{created_at}-{mix:06x}")
}

/// Component, metadata and plan: everything decided without AWS. With `placeholders`
/// (`gears validate`), a version, revision or repo that cannot be found is replaced by a
/// placeholder instead of being an error.
pub async fn prepare(
    settings: &BakeSettings,
    ctx: &RunContext,
    placeholders: bool,
) -> Result<(Component, Metadata, BakePlan), Error> {
    let component = crate::component::load(&settings.component_file)?;
    let meta = match resolve(
        &settings.overrides,
        ctx,
        component.repo.as_deref(),
        git_in(&component.dir),
    )
    .await
    {
        Ok(meta) => meta,
        Err(_) if placeholders => {
            let placeholder = |v: &str| crate::component::metadata::Sourced {
                value: v.into(),
                source: "placeholder".into(),
            };
            Metadata {
                version: placeholder("0.0.0"),
                git_sha: placeholder("0000000"),
                repo: placeholder("unknown"),
            }
        }
        Err(e) => return Err(e),
    };
    let created_at = chrono::Utc::now().format("%Y%m%d%H%M").to_string();
    let run_id = new_run_id(&created_at);
    let plan = plan(&component, &meta, &created_at, &run_id)?;
    Ok((component, meta, plan))
}

/// `gears bake --explain`: where each value came from.
pub fn explain(component: &Component, meta: &Metadata, plan: &BakePlan) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "component          {}    (from {})\n",
        component.name,
        component.path.display()
    ));
    s.push_str(&format!(
        "version            {}    (from {})\n",
        meta.version.value, meta.version.source
    ));
    s.push_str(&format!(
        "git sha            {}    (from {})\n",
        meta.git_sha.value, meta.git_sha.source
    ));
    s.push_str(&format!(
        "repo               {}    (from {})\n",
        meta.repo.value, meta.repo.source
    ));
    s.push_str(&format!(
        "created at         {}    (UTC, now)\n",
        plan.created_at
    ));
    s.push_str(&format!(
        "ami version        {}    (version-created at)\n",
        plan.ami_version
    ));
    s.push_str(&format!(
        "regions            {}    (build in {}, copy to the rest)\n",
        component
            .regions
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        plan.build_region
    ));
    for b in &plan.builders {
        s.push_str(&format!(
            "builder            {} ({}): AMI name {}\n",
            b.name,
            b.kind.as_str(),
            b.ami_name
        ));
    }
    let base = &component.base_ami;
    match (&base.id, &base.name) {
        (Some(id), _) => s.push_str(&format!("base AMI           {id}\n")),
        (_, Some(n)) => s.push_str(&format!(
            "base AMI           newest of name {n}, owners [{}], tags {:?}\n",
            base.owners.join(", "),
            base.tags
        )),
        _ => {}
    }
    s
}

/// Renders the template for a dry run or `gears validate` (no AWS: the base AMI lookup stays a
/// filter), and checks it with `packer validate` when packer is installed. Returns the
/// template and what packer said (None when packer is not installed).
pub async fn render_and_validate(
    settings: &BakeSettings,
    component: &Component,
    plan: &BakePlan,
    cancel: &Cancel,
) -> Result<(String, Option<String>), Error> {
    let dir = &absolute(&settings.work_dir).join(&plan.run_id);
    std::fs::create_dir_all(dir).map_err(|e| Error::Write {
        path: dir.display().to_string(),
        source: e,
    })?;
    let opts = RenderOptions {
        source_ami: None,
        endpoint: settings.endpoint.clone(),
        manifest: dir.join("packer-manifest.json").display().to_string(),
        ansible_vars: ansible_vars_path(dir).display().to_string(),
    };
    let template = render(plan, component, &opts)?;
    write_ansible_vars(plan, component, &opts)?;
    let path = dir.join("template.json");
    std::fs::write(&path, &template).map_err(|e| Error::Write {
        path: path.display().to_string(),
        source: e,
    })?;
    let verdict = crate::packer::validate(&settings.packer, &path, cancel).await?;
    Ok((template, verdict))
}

/// AMIs of an earlier bake of the same component, version and revision.
struct Reused {
    amis: BTreeMap<String, BTreeMap<String, String>>,
    run_id: String,
    created_at: String,
    ami_version: String,
    base_ami: Option<String>,
}

/// Looks for one earlier bake (one `gears:run-id`) that has an available AMI for every builder
/// in every region; the newest such bake wins. AMIs of different bakes are never mixed.
async fn find_existing(
    clients: &BTreeMap<String, Ec2>,
    plan: &BakePlan,
) -> Result<Option<Reused>, Error> {
    // run id -> (builder, region) -> image
    let mut by_run: BTreeMap<String, BTreeMap<(String, String), crate::aws::ec2::Image>> =
        BTreeMap::new();
    for b in &plan.builders {
        let want = BTreeMap::from([
            ("COMPONENT_NAME".to_owned(), plan.component.clone()),
            ("COMPONENT_VERSION".to_owned(), plan.version.clone()),
            ("GIT_SHA".to_owned(), plan.git_sha.clone()),
            ("gears:builder".to_owned(), b.name.clone()),
        ]);
        for (region, ec2) in clients {
            for img in ec2.find_by_tags(&want).await? {
                let run = img.tags.get("gears:run-id").cloned().unwrap_or_default();
                by_run
                    .entry(run)
                    .or_default()
                    .insert((b.name.clone(), region.clone()), img);
            }
        }
    }
    let wanted = plan.builders.len() * clients.len();
    let newest = by_run
        .into_iter()
        .filter(|(run, imgs)| !run.is_empty() && imgs.len() == wanted)
        .max_by(|(a, ia), (b, ib)| {
            let created = |imgs: &BTreeMap<_, crate::aws::ec2::Image>| {
                imgs.values()
                    .map(|i| i.tags.get("CREATED_AT").cloned().unwrap_or_default())
                    .max()
            };
            (created(ia), a).cmp(&(created(ib), b))
        });
    Ok(newest.map(|(run_id, imgs)| {
        let any = imgs
            .values()
            .next()
            .map(|i| i.tags.clone())
            .unwrap_or_default();
        let mut amis: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for ((builder, region), img) in imgs {
            amis.entry(builder).or_default().insert(region, img.id);
        }
        Reused {
            amis,
            run_id,
            created_at: any.get("CREATED_AT").cloned().unwrap_or_default(),
            ami_version: any.get("AMI_VERSION").cloned().unwrap_or_default(),
            base_ami: any.get("gears:base-ami").cloned(),
        }
    }))
}

/// Runs `gears bake`.
pub async fn bake(
    settings: &BakeSettings,
    ctx: &RunContext,
    cancel: &Cancel,
    out: &mut dyn Write,
) -> Result<Exit, Error> {
    let (component, meta, plan) = prepare(settings, ctx, false).await?;
    if settings.explain {
        let _ = out.write_all(explain(&component, &meta, &plan).as_bytes());
        return Ok(Exit::Success);
    }
    if settings.dry_run {
        let (template, verdict) = render_and_validate(settings, &component, &plan, cancel).await?;
        let _ = out.write_all(template.as_bytes());
        match verdict {
            Some(v) => eprintln!("packer validate: {}", if v.is_empty() { "ok" } else { &v }),
            None => eprintln!("packer validate: skipped (packer is not installed)"),
        }
        return Ok(Exit::Success);
    }
    let names: Vec<String> = plan.builders.iter().map(|b| b.name.clone()).collect();
    let mut ui = StageProgress::new(ctx, "bake", &names);
    ui.note(&format!(
        "baking {} {} (git {}) with {} builder(s) into {}",
        plan.component,
        plan.version,
        plan.git_sha,
        names.len(),
        component
            .regions
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let explicit = settings.endpoint_flag.as_deref();
    let mut clients = BTreeMap::new();
    for r in &component.regions {
        clients.insert(r.0.clone(), Ec2::connect(&r.0, explicit).await);
    }
    let build = &clients[&plan.build_region];
    let base = &component.base_ami;
    let lookup = build.find_base_ami(
        base.id.as_deref(),
        base.name.as_deref(),
        &base.owners,
        &base.tags,
    );
    let base_ami = unless_cancelled(cancel, lookup)
        .await??
        .ok_or_else(|| {
            let what = match (&base.id, &base.name) {
                (Some(id), _) => format!("base AMI {id} does not exist in {}", plan.build_region),
                _ => format!(
                    "no base AMI in {} matches name {:?}, owners {:?} and tags {:?}",
                    plan.build_region,
                    base.name.as_deref().unwrap_or("*"),
                    base.owners,
                    base.tags
                ),
            };
            InputError::whole_file(component.path.display().to_string(), what)
                .with_hint("check `base_ami` in the component file, and the region it is looked up in (the first of ami_regions)")
        })?;
    ui.note(&format!("base AMI {} ({})", base_ami.id, base_ami.name));

    if !settings.force {
        if let Some(reused) = unless_cancelled(cancel, find_existing(&clients, &plan)).await?? {
            ui.finish(true);
            ui.note(&format!(
                "{} {} (git {}) is already baked: reusing its AMIs (use --force to bake again)",
                plan.component, plan.version, plan.git_sha
            ));
            // The manifest describes the AMIs found: their bake's run, date and base AMI.
            let mut manifest = Manifest::of(
                &plan,
                reused.base_ami.as_deref().unwrap_or(&base_ami.id),
                reused.amis,
                None,
            );
            manifest.run_id = reused.run_id;
            manifest.created_at = reused.created_at;
            manifest.ami_version = reused.ami_version;
            return finish(settings, &manifest, out);
        }
    }

    // A signal during the lookups: nothing was created yet, so stop before packer starts.
    if let Some(sig) = cancel.signal() {
        ui.finish(false);
        return Err(Error::Interrupted(sig));
    }
    let dir = &absolute(&settings.work_dir).join(&plan.run_id);
    std::fs::create_dir_all(dir).map_err(|e| Error::Write {
        path: dir.display().to_string(),
        source: e,
    })?;
    let packer_manifest = dir.join("packer-manifest.json");
    let opts = RenderOptions {
        source_ami: Some(base_ami.id.clone()),
        endpoint: settings.endpoint.clone(),
        manifest: packer_manifest.display().to_string(),
        ansible_vars: ansible_vars_path(dir).display().to_string(),
    };
    let template = render(&plan, &component, &opts)?;
    write_ansible_vars(&plan, &component, &opts)?;
    let template_path = dir.join("template.json");
    std::fs::write(&template_path, &template).map_err(|e| Error::Write {
        path: template_path.display().to_string(),
        source: e,
    })?;
    // A component's own template is checked before the build, so that a template packer
    // refuses is exit 3 here as in --dry-run (the built-in one is checked by the tests).
    if component.template.is_some() {
        crate::packer::validate(&settings.packer, &template_path, cancel).await?;
    }
    let mut args = vec!["build".to_owned(), "-machine-readable".to_owned()];
    if settings.force {
        args.push("-force".to_owned());
    }
    args.push(template_path.display().to_string());
    let cmd = PackerCommand {
        program: settings.packer.clone(),
        args,
        dir: component.dir.clone(),
        env: vec![("CHECKPOINT_DISABLE".into(), "1".into())],
        log: dir.join("packer.log"),
        cleanup_grace: Duration::from_secs(600),
        heartbeat: settings.heartbeat,
    };
    let result = process::run(&cmd, cancel, |p| match p {
        Progress::Event(Event::Ui {
            level,
            builder,
            text,
        }) => {
            for line in progress_lines(*level, builder.as_deref(), text) {
                ui.line(builder.as_deref(), &line);
            }
        }
        Progress::Event(_) => {}
        Progress::Heartbeat(_) => ui.heartbeat(),
        Progress::Stopping(sig) => ui.note(&format!(
            "{sig} received: waiting for packer to clean up (instance, key pair, security group)"
        )),
    })
    .await;
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            ui.finish(false);
            return Err(e);
        }
    };
    ui.finish(true);
    ui.note(&format!(
        "packer finished in {}",
        human_duration(built.duration)
    ));
    let packer_run_uuid = std::fs::read_to_string(&packer_manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["last_run_uuid"].as_str().map(str::to_owned));
    let manifest = Manifest::of(&plan, &base_ami.id, built.amis, packer_run_uuid);
    finish(settings, &manifest, out)
}

fn finish(
    settings: &BakeSettings,
    manifest: &Manifest,
    out: &mut dyn Write,
) -> Result<Exit, Error> {
    let env = manifest.write(&settings.manifest)?;
    eprintln!(
        "manifest: {} (env file: {})",
        settings.manifest.display(),
        env.display()
    );
    let text = match settings.output {
        OutputFormat::Json => serde_json::to_string_pretty(manifest).unwrap_or_default() + "\n",
        OutputFormat::Human => manifest.ami_lines(),
    };
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(Exit::Success)
}

/// `gears validate`: the component file, the rendered template (and `packer validate`), and the
/// playbook (`ansible-playbook --syntax-check`) when those tools are installed. Never calls AWS;
/// a version or revision that cannot be found is replaced by a placeholder.
pub async fn validate(
    settings: &BakeSettings,
    ctx: &RunContext,
    out: &mut dyn Write,
) -> Result<Exit, Error> {
    // app.rs does not hand its token to `validate` yet: one of its own, on the same signals.
    let cancel = Cancel::new();
    cancel.listen_for_signals();
    let (component, _, plan) = prepare(settings, ctx, true).await?;
    let (_, verdict) = render_and_validate(settings, &component, &plan, &cancel).await?;
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
        let roles: Vec<_> = a.roles.iter().map(|r| component.dir.join(r)).collect();
        report.push_str(
            match crate::ansible::syntax_check(&playbook, &roles, &cancel).await? {
                Some(_) => "ok: ansible-playbook --syntax-check\n",
                None => "skipped: ansible-playbook --syntax-check (ansible is not installed)\n",
            },
        );
    }
    let _ = out.write_all(report.as_bytes());
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_drop_prefixes_blanks_and_tag_chatter() {
        assert_eq!(
            progress_lines(
                UiLevel::Message,
                Some("web"),
                "    web: \n    web: playbook: /x/site.yml"
            ),
            vec!["playbook: /x/site.yml"]
        );
        assert!(progress_lines(
            UiLevel::Message,
            Some("web"),
            "    web: Adding tag: \"A\": \"b\""
        )
        .is_empty());
        assert_eq!(
            progress_lines(UiLevel::Error, Some("web"), "==> web: warning, on stderr"),
            vec!["! warning, on stderr"]
        );
        assert_eq!(
            progress_lines(UiLevel::Say, None, "\n==> Wait completed"),
            vec!["Wait completed"]
        );
    }
}
