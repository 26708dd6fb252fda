//! The desktop visualiser (eframe/egui): UI only, talking to the engine through the worker.

/// Starts the desktop app.
pub fn run() -> anyhow::Result<()> {
    println!(
        "clipscope: the desktop app is not built yet; use `clipscope map` or `clipscope score`."
    );
    Ok(())
}
