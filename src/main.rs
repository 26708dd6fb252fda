//! Entry point: the desktop app without a subcommand, the command line with one.

use clap::Parser;

fn main() {
    let args = clipscope::cli::Args::parse();
    let outcome = match args.command {
        Some(command) => clipscope::cli::run(command),
        None => clipscope::app::run(),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
