//! The composition root: settings → real adapters → stage functions → exit code.

use crate::bake::settings::BakeSettings;
use crate::cancel::{Cancel, Cleanup};
use crate::cli::{Cli, Command};
use crate::context::RunContext;
use crate::error::Error;
use crate::exit::Exit;
use crate::settings::OutputFormat;
use crate::smoke::settings::SmokeSettings;
use crate::test_stage::settings::TestSettings;

/// What must happen before any thread starts: `--profile` becomes `AWS_PROFILE`, for the SDK
/// and for the tools gears runs (packer), so they all use one set of credentials.
pub fn before_threads(cli: &Cli) {
    if let Some(p) = &cli.profile {
        std::env::set_var("AWS_PROFILE", p);
    }
}

/// The run's one runtime. `gears smoke` runs on the current thread: its tests are requests to
/// one host, all polled by the one task of the run (`buffered`), so worker threads would only
/// add their start and cross-thread wake-ups (issue 21: most of a short run). Every other
/// command gets the multi-thread runtime (AWS calls, packer's output, regions in parallel).
pub fn runtime(cli: &Cli) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match cli.command {
        Command::Smoke(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

/// How long cleanup may take after the run, whatever stopped it.
const CLEANUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs a parsed command line to its exit code, printing errors on stderr.
pub async fn run(cli: Cli) -> Exit {
    let ctx = RunContext::capture();
    let cancel = Cancel::new();
    cancel.listen_for_signals();
    let cleanup = Cleanup::default();
    // A second signal while the stage is still stopping ends it at once.
    let outcome = tokio::select! {
        r = dispatch(cli, &ctx, &cancel, &cleanup) => Some(r),
        _ = cancel.escalated() => None,
    };
    let mut exit = match outcome {
        Some(Ok(exit)) => exit,
        Some(Err(e)) => {
            eprint!("{}", e.render());
            if crate::ci::github(&ctx) {
                for a in crate::ci::annotations(&e) {
                    eprintln!("{a}");
                }
            }
            e.exit()
        }
        None => {
            let sig = cancel.ended_by();
            eprintln!("error: a second signal: stopping now, without waiting for the stage to finish stopping");
            let undone = cleanup.pending_steps();
            for what in &undone {
                eprintln!("left undone: {what}");
            }
            // Something left undone (a half-rolled group, an instance not terminated) is for a
            // human to look at: exit 7, not the signal's "stopped after cleanup".
            return if undone.is_empty() {
                sig.exit()
            } else {
                Exit::NeedsHuman
            };
        }
    };
    // Whatever happened, undo what the stages created and did not release themselves, on
    // cleanup's own token and deadline (a first signal does not cut it short; a second does).
    let deadline = tokio::time::Instant::now() + CLEANUP_DEADLINE;
    for (what, result) in cleanup.run_all(&cancel.for_cleanup(), deadline).await {
        match result {
            Ok(()) => eprintln!("cleanup: {what}: done"),
            Err(why) => {
                eprintln!("error: cleanup: {what}: {why}\nhint: a human must look: this resource may still exist");
                exit = exit.most_severe(Exit::NeedsHuman);
            }
        }
    }
    exit
}

async fn dispatch(
    cli: Cli,
    ctx: &RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
) -> Result<Exit, Error> {
    match cli.command {
        Command::Smoke(args) => smoke(&args, ctx, cancel).await,
        Command::Bake(args) => {
            let settings = BakeSettings::resolve((&args).into(), ctx)?;
            let cloud = crate::aws::Aws::new(settings.endpoint_flag.as_deref(), ctx);
            let section = crate::ci::Section::open(ctx, "bake", "gears bake");
            let baked = crate::bake::run::bake(&settings, ctx, cancel, cleanup, &cloud).await;
            drop(section);
            print_baked(&settings, &baked?)?;
            Ok(Exit::Success)
        }
        Command::Test(args) => {
            let settings = TestSettings::resolve((&args).into(), ctx)?;
            let cloud = crate::aws::Aws::new(settings.endpoint_flag.as_deref(), ctx)
                .with_account(settings.account.clone());
            let tested = crate::test_stage::test(&settings, ctx, cancel, cleanup, &cloud).await?;
            print_tested(&settings, ctx, &tested)?;
            Ok(if tested.passed {
                Exit::Success
            } else {
                Exit::SmokeFailed
            })
        }
        Command::Deploy(args) => deploy(&args, ctx, cancel, cleanup).await,
        Command::Pipeline(crate::cli::PipelineCommand::Run(args)) => {
            pipeline(&args, ctx, cancel, cleanup).await
        }
        Command::Reap(args) => reap(&args, ctx, cancel).await,
        Command::Status(args) => {
            let settings = crate::status::StatusSettings::resolve((&args).into(), ctx);
            let cloud = crate::aws::Aws::new(settings.endpoint_flag.as_deref(), ctx)
                .with_account(settings.account.clone());
            let screen = crate::ui::Redraw::new(ctx);
            let look = crate::status::run(&settings, cancel, &cloud, &screen).await?;
            Ok(look.exit_code())
        }
        Command::Amis(crate::cli::AmisCommand::List(args)) => {
            let settings = crate::amis::AmisSettings::resolve((&args).into())?;
            let cloud = crate::aws::Aws::new(settings.endpoint_flag.as_deref(), ctx)
                .with_account(settings.account.clone());
            let listing = crate::amis::list(&settings, cancel, &cloud).await?;
            print_amis(&args, &listing.amis);
            print_unread(&listing.unread, "its use of these AMIs is unknown");
            Ok(listing.exit())
        }
        Command::Amis(crate::cli::AmisCommand::Prune(args)) => {
            let settings = crate::amis::AmisSettings::resolve((&args.amis).into())?;
            let cloud = crate::aws::Aws::new(settings.endpoint_flag.as_deref(), ctx)
                .with_account(settings.account.clone());
            let opts = crate::amis::PruneOptions {
                keep: args.keep,
                yes: args.yes,
                include_shared: args.include_shared,
            };
            let pruned = crate::amis::prune(&settings, opts, cancel, &cloud).await?;
            Ok(print_pruned(&args, &pruned))
        }
        Command::Completions(args) => {
            crate::ui::data(&crate::cli::completions(args.shell));
            Ok(Exit::Success)
        }
        Command::Validate(args) => validate(&args, ctx, cancel).await,
        Command::Man => Ok(man()),
    }
}

/// `gears man`: the man page on stdout.
fn man() -> Exit {
    crate::ui::data(&crate::reference::man_page());
    Exit::Success
}

/// `gears smoke`: the human report on stdout (on stderr when stdout carries JSON), JUnit when
/// asked, the failed checks in GitHub's step summary.
async fn smoke(
    args: &crate::cli::SmokeArgs,
    ctx: &RunContext,
    cancel: &Cancel,
) -> Result<Exit, Error> {
    let settings = SmokeSettings::resolve(args.into(), ctx)?;
    let ui = crate::ui::Terminal::new(match settings.output {
        OutputFormat::Json => crate::ui::ReportTo::Stderr,
        OutputFormat::Human => crate::ui::ReportTo::Stdout,
    });
    let file = crate::smoke::load(&settings.source, cancel).await?;
    let report = crate::smoke::run(&file, &settings, cancel, &ui).await?;
    crate::smoke::report::write(&report, &settings, &ui, &mut std::io::stdout().lock())?;
    if crate::ci::github(ctx) {
        use crate::smoke::report::markdown;
        let md = markdown::render(&report.file, &report.target, &report.results);
        crate::ci::append_summary(ctx, &md);
    }
    Ok(report.exit())
}

/// `gears validate`: the component's checks, as lines or JSON.
async fn validate(
    args: &crate::cli::ValidateArgs,
    ctx: &RunContext,
    cancel: &Cancel,
) -> Result<Exit, Error> {
    let settings = BakeSettings::resolve((&args.component).into(), ctx)?;
    let report = crate::bake::validate::validate(&settings, ctx, cancel).await?;
    if args.output.format == OutputFormat::Json {
        // Each `status: check` line as an object, for scripts.
        let checks: Vec<serde_json::Value> = report
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(status, check)| serde_json::json!({"status": status, "check": check}))
            .collect();
        crate::ui::data(&(serde_json::to_string_pretty(&checks).unwrap_or_default() + "\n"));
    } else {
        crate::ui::data(&report);
    }
    Ok(Exit::Success)
}

/// `gears deploy`: the report of what each group did is printed whatever ends the run (a
/// signal, an AWS error): a script reading stdout always gets it.
async fn deploy(
    args: &crate::cli::DeployArgs,
    ctx: &RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
) -> Result<Exit, Error> {
    let settings = deploy_settings(args, ctx)?;
    let cloud = crate::aws::Aws::new(settings.endpoint_flag.as_deref(), ctx)
        .with_account(settings.account.clone());
    // The report of what each group did is printed whatever ends the run (a signal, an
    // AWS error): a script reading stdout always gets it.
    let ui = crate::ui::Staged::new(ctx, "deploy", &settings.ami.asked_regions());
    let section = crate::ci::Section::open(ctx, "deploy", "gears deploy");
    let (deployed, error) =
        match crate::deploy::deploy(&settings, ctx, cancel, cleanup, &cloud, &ui).await {
            Ok(d) => (d, None),
            Err(f) => (crate::deploy::Deployed { groups: f.groups }, Some(f.error)),
        };
    drop(section);
    if crate::ci::github(ctx) && !deployed.groups.is_empty() {
        crate::ci::append_summary(ctx, &deployed.markdown(&settings.environment));
    }
    if args.output.format == OutputFormat::Json {
        if error.is_none() || !deployed.groups.is_empty() {
            crate::ui::data(&(serde_json::to_string_pretty(&deployed).unwrap_or_default() + "\n"));
        }
    } else {
        for g in &deployed.groups {
            let change = format!("{} -> {}", g.from_ami, g.to_ami);
            let result = g.result.to_string();
            crate::ui::data(&crate::ui::tsv_line(&[
                &g.region, &g.group, &result, &change, &g.detail,
            ]));
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(deployed.exit()),
    }
}

/// `gears pipeline run`: the file, what the flags change in it, the stages, the summary.
async fn pipeline(
    args: &crate::cli::PipelineRunArgs,
    ctx: &RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
) -> Result<Exit, Error> {
    let mut p = crate::pipeline::load(&args.file)?;
    if let Some(m) = &args.manifest {
        p.manifest = m.clone();
    }
    if let Some(h) = &args.target_host {
        if let Some(t) = p.file.test.as_mut() {
            t.target_host = Some(h.clone());
        }
        for d in &mut p.file.deploy {
            d.smoke_target = Some(h.clone());
        }
    }
    let opts = crate::pipeline::RunOptions {
        version: args.build.version.clone(),
        git_sha: args.build.git_sha.clone(),
        endpoint_url: args.endpoint.url.clone(),
        work_dir: args.build.work_dir.clone(),
        packer: args.build.packer.clone(),
    };
    let sel = crate::pipeline::Selection {
        from: args.from.clone(),
        only: args.only.clone(),
    };
    let cloud = crate::aws::Aws::new(args.endpoint.url.as_deref(), ctx);
    let ran = crate::pipeline::run(&p, &sel, &opts, ctx, cancel, cleanup, &cloud).await?;
    if args.output.format == OutputFormat::Json {
        crate::ui::data(&(serde_json::to_string_pretty(&ran).unwrap_or_default() + "\n"));
    } else {
        crate::ui::data(&crate::pipeline::summary_text(&ran));
    }
    if crate::ci::github(ctx) {
        crate::ci::append_summary(ctx, &crate::pipeline::summary_markdown(&ran));
    }
    Ok(ran.exit)
}

/// `gears reap`: the leftovers listed (or removed), a count on stderr.
async fn reap(
    args: &crate::cli::ReapArgs,
    ctx: &RunContext,
    cancel: &Cancel,
) -> Result<Exit, Error> {
    let settings = crate::reap::ReapSettings::resolve(args.into())?;
    let cloud = crate::aws::Aws::new(settings.endpoint_flag.as_deref(), ctx)
        .with_account(settings.account.clone());
    let found = crate::reap::reap(&settings, cancel, &cloud).await?;
    if settings.json {
        crate::ui::data(&(serde_json::to_string_pretty(&found).unwrap_or_default() + "\n"));
    } else {
        for l in &found {
            crate::ui::data(&crate::ui::tsv_line(&[
                &l.region,
                l.kind,
                &l.id,
                &l.action.to_string(),
                &l.reason,
            ]));
        }
    }
    let failed = found.iter().filter(|l| l.action.failed()).count();
    eprintln!(
        "reap: {} leftover(s){}{}",
        found.len(),
        if settings.yes {
            ", removed"
        } else {
            " listed (--yes removes them)"
        },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(crate::reap::exit(&found))
}

/// `gears deploy` arguments as settings, with the component file's `deploy:` section.
fn deploy_settings(
    a: &crate::cli::DeployArgs,
    ctx: &RunContext,
) -> Result<crate::deploy::DeploySettings, Error> {
    let refused = |r: crate::deploy::Refused| {
        Error::usage(format!("--{} {}", r.knob.replace('_', "-"), r.why), None)
    };
    let ask: crate::deploy::DeployAsk = a.into();
    // A wrong flag is said first (exit 2), before a component file that cannot be read.
    let component = match crate::component::load(&a.component.path) {
        Ok(component) => component,
        Err(e) => {
            crate::deploy::DeploySettings::resolve(ask, ctx, None).map_err(refused)?;
            return Err(e);
        }
    };
    crate::deploy::DeploySettings::resolve(ask, ctx, Some(&component)).map_err(refused)
}

/// Test's front: the smoke report (console on stdout, or JSON with the instance and timings),
/// JUnit when asked.
fn print_tested(
    settings: &TestSettings,
    ctx: &RunContext,
    tested: &crate::test_stage::Tested,
) -> Result<(), Error> {
    use crate::smoke::report;
    let json = settings.output == OutputFormat::Json;
    let colour = ctx.stdout_color() && !json;
    let mut console = String::new();
    if let Some(f) = &tested.failure {
        console.push_str(&format!("FAILED: {f}\n"));
    }
    for r in &tested.results {
        console.push_str(&report::console::test_block(r, colour));
    }
    if !tested.results.is_empty() {
        console.push_str(&report::console::summary(
            &tested.results,
            tested.timings.smoke_done - tested.timings.running,
        ));
    }
    if json {
        eprint!("{console}");
        let text = serde_json::to_string_pretty(tested).unwrap_or_default();
        crate::ui::data(&(text + "\n"));
    } else {
        crate::ui::data(&console);
    }
    if let Some(path) = &settings.junit {
        report::write_junit(
            path,
            &tested.smoke_file,
            &tested.results,
            tested.timings.total,
        )?;
    }
    Ok(())
}

/// Bake's front: the manifest and env file written, data on stdout, the rest on stderr.
fn print_baked(settings: &BakeSettings, baked: &crate::bake::run::Baked) -> Result<(), Error> {
    use crate::bake::run::Baked;
    let text = match baked {
        Baked::Explained(text) => text.clone(),
        Baked::Rendered { template, verdict } => {
            match verdict {
                Some(v) => eprintln!("packer validate: {}", if v.is_empty() { "ok" } else { v }),
                None => eprintln!("packer validate: skipped (packer is not installed)"),
            }
            template.clone()
        }
        Baked::Manifest(manifest) => {
            let env = manifest.write(&settings.manifest)?;
            eprintln!(
                "manifest: {} (env file: {})",
                settings.manifest.display(),
                env.display()
            );
            match settings.output {
                OutputFormat::Json => {
                    serde_json::to_string_pretty(manifest).unwrap_or_default() + "\n"
                }
                OutputFormat::Human => manifest.ami_lines(),
            }
        }
    };
    crate::ui::data(&text);
    Ok(())
}

/// `gears amis list`'s front: a table (or JSON) on stdout, a count on stderr.
fn print_amis(args: &crate::cli::AmisArgs, amis: &[crate::amis::Ami]) {
    if args.output.format == OutputFormat::Json {
        crate::ui::data(&(serde_json::to_string_pretty(amis).unwrap_or_default() + "\n"));
    } else {
        let mut rows = vec![[
            "REGION",
            "AMI",
            "VERSION",
            "GIT SHA",
            "BUILDER",
            "AGE",
            "STATE",
            "SHARED WITH",
            "IN USE",
        ]
        .map(str::to_owned)
        .to_vec()];
        for a in amis {
            let f = |v: &str| crate::ui::field(v);
            let age = a
                .age_secs
                .map(crate::text::human_age)
                .unwrap_or_else(|| "?".into());
            rows.push(vec![
                f(&a.region),
                f(&a.id),
                f(&a.version),
                f(&a.git_sha.chars().take(12).collect::<String>()),
                f(&a.builder),
                match &a.created_note {
                    Some(_) => format!("{age}*"),
                    None => age,
                },
                f(&a.state),
                if a.shares.is_empty() {
                    "-".into()
                } else {
                    let who: Vec<String> = a.shares.iter().map(ToString::to_string).collect();
                    f(&who.join(", "))
                },
                if a.in_use.is_empty() {
                    "-".into()
                } else {
                    f(&a.in_use.join(", "))
                },
            ]);
        }
        crate::ui::data(&crate::ui::table(&rows));
    }
    for a in amis {
        if let Some(n) = &a.created_note {
            eprintln!("note: {} {} (age marked *): {n}", a.region, a.id);
        }
    }
    let used = amis.iter().filter(|a| !a.in_use.is_empty()).count();
    eprintln!("amis: {} AMI(s), {used} in use", amis.len());
}

/// The accounts of `accounts:` gears could not read, on stderr (their use is unknown: prune
/// keeps every AMI shared with them, and the exit code is 5).
fn print_unread(unread: &[crate::amis::Unread], then: &str) {
    for u in unread {
        eprintln!("error: {u} ({then})");
        if let Some(h) = u.error.hint() {
            eprintln!("hint: {h}");
        }
    }
}

/// `gears amis prune`'s front: one line per AMI and per snapshot left behind (or JSON) on
/// stdout, a summary on stderr; exit 5 when a deregister or snapshot deletion failed.
fn print_pruned(args: &crate::cli::AmisPruneArgs, report: &crate::amis::PruneReport) -> Exit {
    let pruned = &report.amis;
    if args.amis.output.format == OutputFormat::Json {
        crate::ui::data(&(serde_json::to_string_pretty(report).unwrap_or_default() + "\n"));
    } else {
        for p in pruned {
            let snaps: Vec<String> = p
                .snapshot_actions
                .iter()
                .map(|(s, a)| format!("{s}: {a}"))
                .collect();
            let snaps = if snaps.is_empty() {
                "-".to_owned()
            } else {
                snaps.join(", ")
            };
            let reason = match &p.ami.created_note {
                Some(n) => format!("{}; {n}", p.reason),
                None => p.reason.clone(),
            };
            crate::ui::data(&crate::ui::tsv_line(&[
                &p.ami.region,
                &p.ami.id,
                &p.ami.version,
                &p.action.to_string(),
                &reason,
                &snaps,
            ]));
        }
        for s in &report.snapshots {
            crate::ui::data(&crate::ui::tsv_line(&[
                &s.region,
                &s.id,
                "-",
                &s.action.to_string(),
                &s.reason,
                "-",
            ]));
        }
    }
    let going = pruned.iter().filter(|p| !p.keep).count();
    let failed = report.failures();
    let gone = pruned
        .iter()
        .filter(|p| p.action == crate::amis::AmiAction::Deregistered)
        .count();
    let swept = report.snapshots.len();
    print_unread(&report.unread, "every AMI shared with it was kept");
    eprintln!(
        "amis prune: {} AMI(s), {} kept, {}{}{}",
        pruned.len(),
        pruned.len() - going,
        if args.yes {
            format!("{gone} deregistered")
        } else {
            format!("{going} would go (--yes removes them)")
        },
        if swept > 0 {
            format!(", {swept} snapshot(s) left behind by earlier runs")
        } else {
            String::new()
        },
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    report.exit()
}
