use clap::Parser;
use gears::exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match gears::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            }
            .into();
        }
    };
    gears::app::before_threads(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::NeedsHuman.into();
        }
    };
    runtime.block_on(gears::app::run(cli)).into()
}
