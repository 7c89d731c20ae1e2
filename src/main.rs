use gears::exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match gears::cli::Cli::parse_from_args(std::env::args_os().collect()) {
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
    let runtime = match gears::app::runtime(&cli) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::NeedsHuman.into();
        }
    };
    runtime.block_on(gears::app::run(cli)).into()
}
