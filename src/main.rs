//! Entry point: the desktop app without a subcommand, the command line with one.

use clap::Parser;

/// How long candle's own worker threads spin after each element-wise job before they sleep
/// (candle's default: 25,000 spins, about a millisecond here). Those threads sit beside gemm's
/// rayon threads; on 2 cores their spinning took the cores gemm wanted next. With 200, in
/// `clipscope bench --models vit-b16` run twice each way, B/16 image encode went 206-211 →
/// 192-194 ms and the 8-prompt edit 116-137 → 107-109 ms; an interleaved run against PyTorch
/// after it (bench/2026-12-02-intel-xeon-6-167-4.json) moved the ratios only within their noise.
/// A value in the environment wins.
const CANDLE_SPIN_LIMIT: &str = "200";

fn main() {
    clipscope::alloc::keep_freed_blocks();
    // Before candle starts its thread pool (its first parallel operation reads this).
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", CANDLE_SPIN_LIMIT);
    }
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
