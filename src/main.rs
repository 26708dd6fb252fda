//! Entry point: the desktop app without a subcommand, the command line with one.

use clap::Parser;

fn main() {
    // Logs go to stderr, warnings only unless RUST_LOG says otherwise (e.g.
    // `RUST_LOG=clipscope=debug` for the worker's timings and the app's frame statistics).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = clipscope::cli::Args::parse();
    let outcome = match args.command {
        Some(command) => clipscope::cli::run(command),
        #[cfg(feature = "gui")]
        None => clipscope::app::run(),
        #[cfg(not(feature = "gui"))]
        None => Err(anyhow::anyhow!(
            "this build has no desktop app (built without the `gui` feature); run a subcommand, \
             e.g. `clipscope --help`"
        )),
    };
    if let Err(e) = outcome {
        // One line: the causes joined with ": ", each cut to its first line (candle's errors
        // carry a backtrace below theirs); the whole backtrace only when asked for.
        eprintln!("error: {}", clipscope::error::one_line(e.as_ref()));
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", e.backtrace());
        }
        std::process::exit(1);
    }
}
