//! The composition root: settings → real adapters → stage functions → exit code.

use crate::cancel::{Cancel, Cleanup};
use crate::cli::{Cli, Command};
use crate::context::RunContext;
use crate::error::Error;
use crate::exit::Exit;
use crate::settings::{BakeSettings, SmokeSettings};

/// Runs a parsed command line to its exit code, printing errors on stderr.
pub async fn run(cli: Cli) -> Exit {
    let ctx = RunContext::capture();
    let cancel = Cancel::new();
    cancel.listen_for_signals();
    let cleanup = Cleanup::default();
    let exit = match dispatch(cli, &ctx, &cancel, &cleanup).await {
        Ok(exit) => exit,
        Err(e) => {
            eprint!("{}", e.render());
            e.exit()
        }
    };
    // Whatever happened, undo what the stages created and did not release themselves.
    let mut exit = exit;
    for (what, result) in cleanup.run_all().await {
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
    _cleanup: &Cleanup,
) -> Result<Exit, Error> {
    match cli.command {
        Command::Smoke(args) => {
            let settings = SmokeSettings::resolve(&args, ctx)?;
            // The front: the human report on stdout, or on stderr when stdout carries JSON.
            let ui = crate::ui::Terminal::new(match settings.output {
                crate::settings::OutputFormat::Json => crate::ui::ReportTo::Stderr,
                crate::settings::OutputFormat::Human => crate::ui::ReportTo::Stdout,
            });
            let file = crate::smoke::load(&settings.source, cancel).await?;
            let report = crate::smoke::run(&file, &settings, cancel, &ui).await?;
            crate::smoke::report::write(&report, &settings, &ui, &mut std::io::stdout().lock())?;
            Ok(report.exit())
        }
        Command::Bake(args) => {
            let settings = BakeSettings::for_bake(&args, ctx)?;
            let mut out = std::io::stdout().lock();
            crate::bake::run::bake(&settings, ctx, cancel, &mut out).await
        }
        Command::Validate(args) => {
            let settings = BakeSettings::resolve(&args.component, ctx)?;
            let mut out = std::io::stdout().lock();
            crate::bake::run::validate(&settings, ctx, &mut out).await
        }
    }
}
