//! The bake stage: plan → base AMI → reuse check → render → packer → manifest.

use super::base::Bases;
use super::packer_use::PackerInUse;
use super::plan::{plan, BakePlan};
use super::template::{ansible_vars_path, render, write_ansible_vars, RenderOptions};
use crate::aws::{Cloud, Image, Images, Instances};
use crate::bake::settings::BakeSettings;
use crate::cancel::{Cancel, Cleanup};
use crate::component::metadata::{git_in, resolve, Metadata};
use crate::component::Component;
use crate::context::RunContext;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::packer::machine::{Event, UiLevel};
use crate::packer::process::{self, PackerCommand, Progress};
use crate::text::human_duration;
use crate::ui::StageProgress;
use crate::wait::unless_cancelled;
use std::collections::BTreeMap;
use std::time::Duration;

/// What `gears bake` produced, for the front to print and write.
#[derive(Debug, Clone)]
pub enum Baked {
    /// `--explain`: where each value comes from.
    Explained(String),
    /// `--dry-run`: the rendered template, and what `packer validate` said (None: packer is
    /// not installed).
    Rendered {
        template: String,
        verdict: Option<String>,
    },
    /// The AMIs, baked now or reused.
    Manifest(Box<Manifest>),
}

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

/// Which of packer's `ui` texts to show. packer says each artifact of a build in a
/// `--> builder: AMIs were created: …` line once per artifact, and the manifest post-processor
/// hands the builder's artifact on as a second one with the same text: each such text is shown
/// once.
#[derive(Default)]
pub struct ShownOnce(std::collections::HashSet<String>);

impl ShownOnce {
    /// Whether `text` is to be shown: anything but a `--> ` line already shown.
    pub fn first_time(&mut self, text: &str) -> bool {
        !text.trim_start_matches('\n').starts_with("--> ") || self.0.insert(text.to_owned())
    }
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
                warnings: vec![],
            }
        }
        Err(e) => return Err(e),
    };
    let created_at = chrono::Utc::now().format("%Y%m%d%H%M").to_string();
    let run_id = crate::random::uuid_v7();
    let plan = plan(&component, &meta, &created_at, &run_id)?;
    for w in meta.warnings.iter().chain(&plan.warnings) {
        eprintln!("warning: {w}");
    }
    Ok((component, meta, plan))
}

/// A bake's work folder once the template is written into it.
struct WorkDir {
    /// `<work_dir>/<run id>`, absolute.
    dir: std::path::PathBuf,
    /// The rendered template.
    template: String,
    /// Where the template was written (`template.json`, `template.pkr.hcl`).
    template_path: std::path::PathBuf,
    /// Where packer's manifest post-processor writes (`packer-manifest.json`).
    packer_manifest: std::path::PathBuf,
}

/// The bake's work folder: `<work_dir>/<run id>`, absolute.
fn work_folder(settings: &BakeSettings, plan: &BakePlan) -> std::path::PathBuf {
    absolute(&settings.work_dir).join(&plan.run_id)
}

/// Creates the bake's work folder and writes the rendered template and the ansible vars into
/// it. `source_ami` None keeps the base AMI lookup a filter (no AWS).
fn write_work_dir(
    settings: &BakeSettings,
    (component, packer): (&Component, &PackerInUse),
    plan: &BakePlan,
    (source_ami, bases): (Option<String>, &BTreeMap<String, Image>),
) -> Result<WorkDir, Error> {
    let dir = work_folder(settings, plan);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Write {
        path: dir.display().to_string(),
        source: e,
    })?;
    let packer_manifest = dir.join("packer-manifest.json");
    let opts = RenderOptions {
        source_ami,
        builder_amis: bases
            .iter()
            .map(|(b, i)| (b.clone(), (i.id.clone(), i.root_device_name.clone())))
            .collect(),
        metadata_options: packer.version.is_some_and(|v| v.has_plugins_block()),
        endpoint: settings.endpoint.clone(),
        manifest: packer_manifest.display().to_string(),
        ansible_vars: ansible_vars_path(&dir).display().to_string(),
        format: packer.format,
        packer_block: packer.packer_block(),
    };
    let template = render(plan, component, &opts)?;
    write_ansible_vars(plan, component, &opts)?;
    let template_path = dir.join(packer.format.file_name());
    std::fs::write(&template_path, &template).map_err(|e| Error::Write {
        path: template_path.display().to_string(),
        source: e,
    })?;
    Ok(WorkDir {
        dir,
        template,
        template_path,
        packer_manifest,
    })
}

/// Renders the template for a dry run or `gears validate` (no AWS: the base AMI lookup stays a
/// filter), and checks it with `packer validate` when packer is installed, after seeing to
/// its plugins. Returns the template and what packer said (None when packer is not installed).
pub async fn render_and_validate(
    settings: &BakeSettings,
    (component, packer): (&Component, &PackerInUse),
    plan: &BakePlan,
    cancel: &Cancel,
) -> Result<(String, Option<String>), Error> {
    packer
        .ensure_plugins(settings, &work_folder(settings, plan), cancel)
        .await?;
    let work = write_work_dir(
        settings,
        (component, packer),
        plan,
        (None, &BTreeMap::new()),
    )?;
    let verdict = crate::packer::validate(&settings.packer, &work.template_path, cancel).await?;
    Ok((work.template, verdict))
}

/// What a bake says when an earlier bake of the same version and revision is reused.
fn reusing_line(plan: &super::plan::BakePlan) -> String {
    format!(
        "{} {} (git {}) is already baked: reusing its AMIs (use --force to bake again)",
        plan.component, plan.version, plan.git_sha
    )
}

/// `--explain` and `--dry-run`: what they print, before any AWS call; `None` for a bake.
async fn explain_or_render(
    settings: &BakeSettings,
    (component, meta, plan): (&Component, &Metadata, &BakePlan),
    packer: &PackerInUse,
    cancel: &Cancel,
) -> Result<Option<Baked>, Error> {
    if settings.explain {
        let mut s = super::explain::explain(component, meta, plan);
        s.push_str(&packer.explain());
        return Ok(Some(Baked::Explained(s)));
    }
    if settings.dry_run {
        let (template, verdict) =
            render_and_validate(settings, (component, packer), plan, cancel).await?;
        return Ok(Some(Baked::Rendered { template, verdict }));
    }
    Ok(None)
}

/// Runs `gears bake` against `cloud`: returns what to print; writes nothing but the work folder.
pub async fn bake<C: Cloud>(
    settings: &BakeSettings,
    ctx: &RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
    cloud: &C,
) -> Result<Baked, Error> {
    let (component, meta, plan) = prepare(settings, ctx, false).await?;
    let packer = PackerInUse::read(settings, &component, cancel).await?;
    if let Some(early) =
        explain_or_render(settings, (&component, &meta, &plan), &packer, cancel).await?
    {
        return Ok(early);
    }
    // The plugins the Packer in use lacks stop the bake before any AWS call.
    packer
        .ensure_plugins(settings, &work_folder(settings, &plan), cancel)
        .await?;
    let names: Vec<String> = plan.builders.iter().map(|b| b.name.clone()).collect();
    let mut ui = StageProgress::new(ctx, "bake", &names);
    ui.note(&baking_line(&component, &plan, names.len()));
    if packer.version.is_some_and(|v| !v.has_plugins_block()) {
        ui.note(&format!("build instance IMDS: {}", packer.imds_note()));
    }

    let mut ports = Vec::with_capacity(component.regions.len());
    for r in &component.regions {
        ports.push(unless_cancelled(cancel, cloud.images(&r.0)).await??);
    }
    let bases = super::base::base_amis(&ports[0], (&component, &plan), &mut ui, cancel).await?;

    if !settings.force {
        let reusable = find_reusable(&ports, (&component, &plan), &bases, &mut ui, cancel).await?;
        if let Some(manifest) = reusable {
            let manifest = after_bake(manifest, &ports, &component, cancel).await?;
            return Ok(Baked::Manifest(Box::new(manifest)));
        }
    }

    // A signal during the lookups: nothing was created yet, so stop before packer starts.
    if let Some(sig) = cancel.signal() {
        ui.finish(false);
        return Err(Error::Interrupted(sig));
    }
    let mut plan = plan;
    super::made_from::tag_parameters(&mut plan, &component, &bases);
    let baked = build(
        settings,
        (&component, &packer, &plan),
        (&bases.component.id, &bases.builders),
        (cancel, cleanup),
        cloud,
        &mut ui,
    )
    .await?;
    let baked = super::made_from::baked(baked, &bases);
    let manifest = after_bake(baked, &ports, &component, cancel).await?;
    Ok(Baked::Manifest(Box::new(manifest)))
}

/// Renders the template with the base AMI found, checks a component's own template, runs
/// packer and returns the manifest of what it baked.
async fn build<C: Cloud>(
    settings: &BakeSettings,
    (component, packer, plan): (&Component, &PackerInUse, &BakePlan),
    (base_ami, bases): (&str, &BTreeMap<String, Image>),
    (cancel, cleanup): (&Cancel, &Cleanup),
    cloud: &C,
    ui: &mut StageProgress,
) -> Result<Manifest, Error> {
    let work = write_work_dir(
        settings,
        (component, packer),
        plan,
        (Some(base_ami.to_owned()), bases),
    )?;
    // A component's own template is checked before the build, so that a template packer
    // refuses is exit 3 here as in --dry-run (the built-in one is checked by the tests).
    if component.template.is_some() {
        crate::packer::validate(&settings.packer, &work.template_path, cancel).await?;
    }
    let build_instances =
        unless_cancelled(cancel, cloud.instances(&component.regions[0].0)).await??;
    let built = match run_packer(
        settings,
        component,
        plan,
        &work,
        (cancel, cleanup),
        &build_instances,
        ui,
    )
    .await
    {
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
    let packer_run_uuid = std::fs::read_to_string(&work.packer_manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["last_run_uuid"].as_str().map(str::to_owned));
    Ok(Manifest::baked(plan, base_ami, built.amis, packer_run_uuid))
}

/// What follows a bake or a reuse, in every region: the AMIs shared, deprecated and protected
/// as the component file asks.
async fn after_bake<I: Images>(
    manifest: Manifest,
    ports: &[I],
    component: &Component,
    cancel: &Cancel,
) -> Result<Manifest, Error> {
    let manifest = super::share::share(manifest, ports, &component.share, cancel).await?;
    super::hygiene::apply(manifest, ports, component, cancel).await
}

/// The first progress line of a bake: what is baked, with how many builders, into which regions.
fn baking_line(component: &Component, plan: &BakePlan, builders: usize) -> String {
    format!(
        "baking {} {} (git {}) with {builders} builder(s) into {}",
        plan.component,
        plan.version,
        plan.git_sha,
        component
            .regions
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The manifest of AMIs an earlier bake of the same component version and revision left in
/// every region, if there are such AMIs, encrypted as `encrypt:` asks (one that is not is
/// passed over, saying why), described as that bake (`made_from::reused`).
async fn find_reusable<I: Images>(
    ports: &[I],
    (component, plan): (&Component, &BakePlan),
    bases: &Bases,
    ui: &mut StageProgress,
    cancel: &Cancel,
) -> Result<Option<Manifest>, Error> {
    use super::reuse::{other_encryption_line, Earlier};
    let found = match unless_cancelled(cancel, super::reuse::find(ports, plan)).await?? {
        Earlier::Reuse(r) => r,
        Earlier::OtherEncryption(r) => {
            ui.note(&other_encryption_line(plan, &r));
            return Ok(None);
        }
        Earlier::None => return Ok(None),
    };
    let (manifest, unrecorded) =
        super::made_from::reused(plan, component, found, &bases.component.id);
    ui.finish(true);
    ui.note(&reusing_line(plan));
    if let Some(note) = unrecorded {
        ui.note(&note);
    }
    Ok(Some(manifest))
}

/// The `packer build` command of a bake, run in the component's folder.
fn packer_command(settings: &BakeSettings, component: &Component, work: &WorkDir) -> PackerCommand {
    let mut args = vec!["build".to_owned(), "-machine-readable".to_owned()];
    if settings.force {
        args.push("-force".to_owned());
    }
    args.push(work.template_path.display().to_string());
    PackerCommand {
        program: settings.packer.clone(),
        args,
        dir: component.dir.clone(),
        env: vec![("CHECKPOINT_DISABLE".into(), "1".into())],
        log: work.dir.join("packer.log"),
        cleanup_grace: Duration::from_secs(600),
        heartbeat: settings.heartbeat,
    }
}

/// Keeps each build instance packer names from being reaped mid-build: its `gears:expires-at`
/// set to [`BUILD_TTL`](super::plan::BUILD_TTL) from now at once and every sixth of that while
/// packer runs (until the sender, packer's progress, is gone). Best effort: a failed write is
/// tried again at the next beat (the instance keeps its `gears:ttl` meanwhile).
async fn renew_expiry<I: Instances>(
    instances: &I,
    mut seen: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let ttl = super::plan::BUILD_TTL
        .parse::<crate::units::Ttl>()
        .map_or(Duration::from_secs(3 * 3600), Duration::from);
    let mut ids: Vec<String> = Vec::new();
    let mut beat = tokio::time::interval(ttl / 6);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due: Vec<String> = tokio::select! {
            id = seen.recv() => match id {
                Some(id) if !ids.contains(&id) => {
                    ids.push(id.clone());
                    vec![id]
                }
                Some(_) => continue,
                None => return,
            },
            _ = beat.tick() => ids.clone(),
        };
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(3));
        let tags = std::collections::BTreeMap::from([(
            crate::tags::EXPIRES_AT.to_owned(),
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )]);
        for id in &due {
            let _ = instances.set_tags(id, &tags).await;
        }
    }
}

/// Runs `packer build`, showing its progress lines, with its cleanup on the cleanup list while
/// it runs.
async fn run_packer<I: Instances>(
    settings: &BakeSettings,
    component: &Component,
    plan: &BakePlan,
    work: &WorkDir,
    (cancel, cleanup): (&Cancel, &Cleanup),
    build_instances: &I,
    ui: &mut StageProgress,
) -> Result<process::BuildOutput, Error> {
    let cmd = packer_command(settings, component, work);
    // Packer cleans up its own build resources, even after a signal; gears waits for that. Only
    // a second signal (which stops gears at once) can leave them: then this step is reported as
    // left undone, naming how to find them.
    let region = component
        .regions
        .first()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let mut made = crate::bake::leftovers::Leftovers::default();
    // Each build instance packer names, for its expiry to be renewed while packer runs.
    let (seen, renewals) = tokio::sync::mpsc::unbounded_channel();
    let packer_cleanup = cleanup.register(
        made.undone(&region, crate::tags::RUN_ID, &plan.run_id),
        || async { Ok(()) },
    );
    let mut shown = ShownOnce::default();
    let build = process::run(&cmd, cancel, move |p| match p {
        Progress::Event(Event::Ui {
            level,
            builder,
            text,
        }) if shown.first_time(text) => {
            // Each build resource packer names, named in turn in what a second signal leaves.
            if text.lines().filter(|l| made.see(l)).count() > 0 {
                for id in &made.instances {
                    let _ = seen.send(id.clone());
                }
                cleanup.rename(
                    packer_cleanup,
                    made.undone(&region, crate::tags::RUN_ID, &plan.run_id),
                );
            }
            for line in progress_lines(*level, builder.as_deref(), text) {
                ui.line(builder.as_deref(), &line);
            }
        }
        Progress::Event(_) => {}
        Progress::Heartbeat(_) => ui.heartbeat(),
        Progress::Stopping(sig) => ui.note(&format!(
            "{sig} received: waiting for packer to clean up (instance, key pair, security group)"
        )),
    });
    let (result, ()) = tokio::join!(build, renew_expiry(build_instances, renewals));
    // packer has exited: whatever it created, it has cleaned up or handed over as AMIs.
    cleanup.done(packer_cleanup);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorKind;
    use crate::exit::Exit;
    use crate::testing::{ctx, image, FakeCloud, Faults};

    /// A component baked by one builder into one region, settings that would fail loudly
    /// (exit 4) if packer were ever started, and a fake cloud holding its base AMI.
    /// `ami-old`: an earlier bake of hello 7.0.1 (git abc), made at `created`, to be reused.
    fn add_earlier_bake(cloud: &FakeCloud, created: &str) {
        add_bake(cloud, ("ami-old", "old-run", created), &[]);
    }

    /// Adds the AMI `ami` of builder `web` that bake `run` of hello 7.0.1 (git abc) made at
    /// `created`, with `more` tags.
    fn add_bake(cloud: &FakeCloud, (ami, run, created): (&str, &str, &str), more: &[(&str, &str)]) {
        let ami_version = format!("7.0.1-{created}");
        let mut tags = vec![
            ("COMPONENT_NAME", "hello"),
            ("COMPONENT_VERSION", "7.0.1"),
            ("GIT_SHA", "abc"),
            ("gears:run-id", run),
            ("gears:builder", "web"),
            ("CREATED_AT", created),
            ("AMI_VERSION", ami_version.as_str()),
        ];
        tags.extend_from_slice(more);
        cloud.add_image("us-east-1", image(ami, &tags));
    }

    /// Adds `tail` (keys of the component file) to the end of the stage's component file.
    fn append_to_file(settings: &BakeSettings, tail: &str) {
        let text = std::fs::read_to_string(&settings.component_file).unwrap();
        std::fs::write(&settings.component_file, format!("{text}{tail}")).unwrap();
    }

    fn stage(dir: &std::path::Path) -> (BakeSettings, FakeCloud) {
        let file = dir.join("gears.yaml");
        std::fs::write(
            &file,
            "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0b0b0b0b0b0b0b0b0}\nbuilders: [{type: amazon-ebs, name: web}]\ncommunicator: none\n",
        )
        .unwrap();
        let settings = BakeSettings {
            component_file: file,
            overrides: crate::component::metadata::Overrides {
                version: Some("7.0.1".into()),
                git_sha: Some("abc".into()),
            },
            endpoint: None,
            endpoint_flag: None,
            manifest: dir.join("m.json"),
            work_dir: dir.join(".gears"),
            packer: "/nonexistent/packer".into(),
            dry_run: false,
            explain: false,
            force: false,
            output: crate::settings::OutputFormat::Human,
            heartbeat: Duration::from_secs(30),
        };
        let cloud = FakeCloud::new();
        cloud.add_image("us-east-1", image("ami-0b0b0b0b0b0b0b0b0", &[]));
        (settings, cloud)
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_bake_is_reused_through_the_port_without_packer() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, cloud) = stage(dir.path());
        cloud.add_image(
            "us-east-1",
            image(
                "ami-old",
                &[
                    ("COMPONENT_NAME", "hello"),
                    ("COMPONENT_VERSION", "7.0.1"),
                    ("GIT_SHA", "abc"),
                    ("gears:run-id", "old-run"),
                    ("gears:builder", "web"),
                    ("CREATED_AT", "202601010000"),
                    ("AMI_VERSION", "7.0.1-202601010000"),
                ],
            ),
        );
        let baked = bake(
            &settings,
            &ctx(),
            &Cancel::new(),
            &Cleanup::default(),
            &cloud,
        )
        .await
        .unwrap();
        let Baked::Manifest(m) = baked else {
            panic!("{baked:?}")
        };
        assert!(m.reused);
        assert_eq!(m.run_id, "old-run");
        assert_eq!(m.ami(Some("web"), "us-east-1"), Some("ami-old"));
        // No gears:base-ami tag on the old AMIs: the base looked up now is recorded.
        assert_eq!(m.base_ami, "ami-0b0b0b0b0b0b0b0b0");
        assert_eq!(
            cloud.calls(),
            ["DescribeImages us-east-1", "DescribeImages us-east-1"]
        );
    }

    /// A file with `encrypt:` reuses only a bake whose AMIs record that encryption: an earlier
    /// bake without the record is baked again (here: packer is missing, exit 4, so nothing was
    /// reused); once its AMIs record the same keys, it is reused.
    #[tokio::test(start_paused = true)]
    async fn a_reuse_is_refused_when_its_amis_are_not_encrypted_as_encrypt_asks() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, cloud) = stage(dir.path());
        append_to_file(&settings, "encrypt: {kms_key_id: alias/amis}\n");
        add_earlier_bake(&cloud, "202601010000");
        let (ctx, cancel, cleanup) = (ctx(), Cancel::new(), Cleanup::default());
        let run = || bake(&settings, &ctx, &cancel, &cleanup, &cloud);
        let e = run().await.unwrap_err();
        assert!(
            matches!(e, Error::Packer(crate::packer::PackerError::Missing(_))),
            "{e}"
        );
        let recorded = [
            ("COMPONENT_NAME", "hello"),
            ("COMPONENT_VERSION", "7.0.1"),
            ("GIT_SHA", "abc"),
            ("gears:run-id", "recorded-run"),
            ("gears:builder", "web"),
            ("CREATED_AT", "202512010000"),
            (crate::tags::ENCRYPT, "us-east-1=alias/amis"),
        ];
        cloud.add_image("us-east-1", image("ami-recorded", &recorded));
        let Baked::Manifest(m) = run().await.unwrap() else {
            panic!("not a manifest")
        };
        assert!(m.reused);
        assert_eq!(m.ami(Some("web"), "us-east-1"), Some("ami-recorded"));
    }

    /// Issue 36 item 4: `base_ami: {ssm: ...}` is read from the build region's Parameter Store
    /// before anything else; the manifest records the parameter, its version and the AMI. A
    /// parameter that does not exist, or whose value is not an AMI id, is exit 3 naming it.
    #[tokio::test(start_paused = true)]
    async fn a_base_ami_from_parameter_store_is_recorded_and_a_bad_one_is_exit_3() {
        const PARAM: &str = "/golden/amzn2";
        let dir = tempfile::tempdir().unwrap();
        let (settings, cloud) = stage(dir.path());
        let file = std::fs::read_to_string(&settings.component_file).unwrap();
        std::fs::write(
            &settings.component_file,
            file.replace(
                "base_ami: {id: ami-0b0b0b0b0b0b0b0b0}",
                &format!("base_ami: {{ssm: {PARAM}}}"),
            ),
        )
        .unwrap();
        add_earlier_bake(&cloud, "202601010000");
        let (c, cancel, cleanup) = (ctx(), Cancel::new(), Cleanup::default());
        let run = || bake(&settings, &c, &cancel, &cleanup, &cloud);
        let Err(e) = run().await else {
            panic!("no such parameter")
        };
        assert_eq!(e.exit(), crate::exit::Exit::InvalidInput);
        assert!(
            e.render().contains(&format!(
                "the parameter {PARAM} does not exist in us-east-1"
            )),
            "{}",
            e.render()
        );
        cloud.put_parameter("us-east-1", PARAM, "hunter2-db-password", "text");
        let Err(e) = run().await else {
            panic!("not an AMI")
        };
        assert_eq!(e.exit(), crate::exit::Exit::InvalidInput);
        assert!(
            e.render().contains(&format!(
                "the parameter {PARAM} (version 1) holds a value that is not an AMI id (data type text, 19 characters; not shown)"
            )),
            "{}",
            e.render()
        );
        assert!(
            !e.render().contains("hunter2"),
            "a parameter's value is never shown"
        );
        let pending = crate::aws::Image {
            state: "pending".into(),
            ..image("ami-0c0c0c0c0c0c0c0c0", &[])
        };
        cloud.add_image("us-east-1", pending);
        cloud.put_parameter("us-east-1", PARAM, "ami-0c0c0c0c0c0c0c0c0", "text");
        let Err(e) = run().await else {
            panic!("a pending base AMI")
        };
        assert_eq!(e.exit(), crate::exit::Exit::InvalidInput);
        assert!(
            e.render().contains("base AMI ami-0c0c0c0c0c0c0c0c0 (from the parameter /golden/amzn2, version 2) is pending in us-east-1, not available"),
            "{}",
            e.render()
        );
        cloud.put_parameter("us-east-1", PARAM, "ami-0b0b0b0b0b0b0b0b0", "aws:ec2:image");
        let Baked::Manifest(m) = run().await.unwrap() else {
            panic!("not a manifest")
        };
        // A reused bake whose AMIs do not record a parameter: none, never the one read now.
        assert!(m.reused);
        assert_eq!(m.base_ami_parameter, None);
        assert!(cloud.calls().iter().any(|c| c == "GetParameter us-east-1"));
        // One that records it: what it was made from (version 2, another AMI), not version 3.
        let recorded = [
            (crate::tags::BASE_AMI, "ami-0a0a0a0a0a0a0a0a0"),
            (crate::tags::BASE_AMI_PARAMETER, "/golden/amzn2:2"),
        ];
        add_bake(
            &cloud,
            ("ami-recorded", "recorded-run", "202602010000"),
            &recorded,
        );
        let Baked::Manifest(m) = run().await.unwrap() else {
            panic!("not a manifest")
        };
        assert_eq!(m.run_id, "recorded-run");
        assert_eq!(m.base_ami, "ami-0a0a0a0a0a0a0a0a0");
        let p = m.base_ami_parameter.expect("recorded");
        assert_eq!(
            (p.name.as_str(), p.version, p.ami.as_str()),
            (PARAM, 2, "ami-0a0a0a0a0a0a0a0a0")
        );
    }

    /// Issue 36 item 5: `deprecate_after` and `deregistration_protection` are set by gears on
    /// every AMI of a reused bake (as after a bake: Packer 1.6.6 has neither option); the
    /// deprecation time is the bake's minute plus the days, the same on every rerun.
    #[tokio::test(start_paused = true)]
    async fn a_bake_deprecates_and_protects_its_amis() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, cloud) = stage(dir.path());
        append_to_file(
            &settings,
            "deprecate_after: 12w\nderegistration_protection: enabled\n",
        );
        let now = chrono::Utc::now();
        let created = now.format("%Y%m%d%H%M").to_string();
        add_earlier_bake(&cloud, &created);
        let (c, cancel, cleanup) = (ctx(), Cancel::new(), Cleanup::default());
        let Baked::Manifest(m) = bake(&settings, &c, &cancel, &cleanup, &cloud)
            .await
            .unwrap()
        else {
            panic!("not a manifest")
        };
        let want = crate::component::hygiene::deprecation_time(
            chrono::NaiveDateTime::parse_from_str(&format!("{created}00"), "%Y%m%d%H%M%S")
                .unwrap()
                .and_utc(),
            crate::component::hygiene::Days(84),
        )
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
        assert_eq!(m.deprecate_at.as_deref(), Some(want.as_str()));
        assert_eq!(m.deregistration_protection.as_deref(), Some("enabled"));
        assert_eq!(
            cloud.hygiene_of("ami-old"),
            (Some(want), Some("enabled".to_owned()))
        );
        let calls = cloud.calls();
        for op in [
            "EnableImageDeprecation us-east-1",
            "EnableImageDeregistrationProtection us-east-1",
        ] {
            assert!(calls.iter().any(|c| c == op), "{op}: {calls:?}");
        }
    }

    /// Issue 33 item 1: a reused bake shares its AMIs as `share:` asks and reads them back; a
    /// share EC2 answers with success but does not store is exit 5, naming what is missing.
    #[tokio::test(start_paused = true)]
    async fn a_reused_bake_shares_its_amis_and_reads_the_shares_back() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, cloud) = stage(dir.path());
        append_to_file(&settings, "share:\n  accounts: [\"111111111111\", \"222222222222\"]\n  organizations: [arn:aws:organizations::123456789012:organization/o-abcd123456]\n");
        add_earlier_bake(&cloud, "202601010000");
        let run = |cloud: FakeCloud| {
            let settings = settings.clone();
            async move {
                bake(
                    &settings,
                    &ctx(),
                    &Cancel::new(),
                    &Cleanup::default(),
                    &cloud,
                )
                .await
            }
        };
        let Baked::Manifest(m) = run(cloud.clone()).await.unwrap() else {
            panic!("not a manifest")
        };
        let held = cloud.shares_of_image("ami-old").launch;
        assert_eq!(held, m.shares);
        assert_eq!(m.owner_account.as_deref(), Some("123456789012"));
        assert_eq!(
            held.accounts
                .iter()
                .map(|a| a.0.as_str())
                .collect::<Vec<_>>(),
            ["111111111111", "222222222222"]
        );
        assert_eq!(held.organizations.len(), 1);
        // Again, with every share call throttled for its first 20 s: waited out (the AMIs
        // exist by now, the step does not fail), idempotent, nothing added twice.
        cloud.set_faults(Faults {
            throttle_ops: vec!["ModifyImageAttribute"],
            ..Faults::default()
        });
        let calm = cloud.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            calm.set_faults(Faults::default());
        });
        run(cloud.clone()).await.unwrap();
        let throttled = cloud
            .calls()
            .iter()
            .filter(|c| c.starts_with("ModifyImageAttribute"))
            .count();
        assert!(throttled > 2, "the share was retried: {:?}", cloud.calls());
        assert_eq!(cloud.shares_of_image("ami-old").launch, held);

        let (settings2, ignoring) = stage(dir.path());
        append_to_file(&settings2, "share: {accounts: [\"333333333333\"]}\n");
        add_earlier_bake(&ignoring, "202601010000");
        ignoring.ignore_shares();
        let e = run(ignoring).await.unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
        assert!(
            e.render()
                .contains("ami-old is not shared with account 333333333333"),
            "{}",
            e.render()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_or_a_denied_call_is_exit_5_before_packer_starts() {
        for (at, kind, hint) in [
            (1, ErrorKind::Throttled, "retry the stage later"),
            (2, ErrorKind::AccessDenied, "lack a permission"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (settings, cloud) = stage(dir.path());
            cloud.set_faults(Faults {
                fail_at: Some((at, kind)),
                ..Default::default()
            });
            let e = bake(
                &settings,
                &ctx(),
                &Cancel::new(),
                &Cleanup::default(),
                &cloud,
            )
            .await
            .unwrap_err();
            assert_eq!(e.exit(), Exit::Cloud, "{kind:?}: {}", e.render());
            assert!(e.render().contains(hint), "{}", e.render());
            assert_eq!(
                cloud.calls().len(),
                at as usize,
                "no call after the failing one"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_during_a_slow_aws_call_stops_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, cloud) = stage(dir.path());
        cloud.set_faults(Faults {
            latency: Duration::from_secs(120),
            ..Default::default()
        });
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        let start = tokio::time::Instant::now();
        let e = bake(&settings, &ctx(), &cancel, &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Terminated);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    /// A real log with a manifest post-processor (artifact-count 2): the artifact block once.
    #[test]
    fn each_artifact_block_is_shown_once() {
        let log = include_str!("../../tests/fixtures/packer/interrupted-toppid.out");
        let mut shown = ShownOnce::default();
        let mut lines = Vec::new();
        for ev in log.lines().filter_map(crate::packer::machine::parse_line) {
            if let Event::Ui {
                level,
                builder,
                text,
            } = &ev
            {
                if shown.first_time(text) {
                    lines.extend(progress_lines(*level, builder.as_deref(), text));
                }
            }
        }
        let count = |s: &str| lines.iter().filter(|l| l.contains(s)).count();
        assert_eq!(count("AMIs were created:"), 1, "{lines:#?}");
        assert_eq!(count("us-east-1: ami-6eae3ebd77eaddf00"), 1, "{lines:#?}");
        assert_eq!(count("Launching a source AWS instance"), 1, "{lines:#?}");
    }

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
