//! The composition root: settings → real adapters → stage functions → exit code.

use crate::cancel::Cancel;
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
    match dispatch(cli, &ctx, &cancel).await {
        Ok(exit) => exit,
        Err(e) => {
            eprint!("{}", e.render());
            e.exit()
        }
    }
}

async fn dispatch(cli: Cli, ctx: &RunContext, cancel: &Cancel) -> Result<Exit, Error> {
    match cli.command {
        Command::Smoke(args) => {
            let settings = SmokeSettings::resolve(&args, ctx)?;
            let file = crate::smoke::load(&settings.source)?;
            let mut out = std::io::stdout().lock();
            let mut err = std::io::stderr();
            crate::smoke::execute(&file, &settings, cancel, &mut out, &mut err).await
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
