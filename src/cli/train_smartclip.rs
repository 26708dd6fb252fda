//! `clipscope train-smartclip`: trains SmartCLIP's mask network for a frozen CLIP.

use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

use crate::train::smartclip::{self, Options};

#[derive(Debug, clap::Args)]
pub struct TrainSmartclipArgs {
    /// Backbone (folder or hub id; default: the embedded shapes-world model). It stays frozen.
    #[arg(long, value_name = "DIR|HUB_ID")]
    pub model: Option<String>,
    /// Folder to write `smartclip.json` + `smartclip.safetensors`.
    #[arg(long, value_name = "DIR", default_value = "runs/smartclip")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 800)]
    pub steps: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Training scenes encoded once and drawn from.
    #[arg(long, default_value_t = 4096)]
    pub pool: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the mask so far and the training state (`<out>/smartclip-state.safetensors`) every
    /// this many steps (0: never).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Continue from `<out>/smartclip-state.safetensors` where an earlier run with the same
    /// options stopped.
    #[arg(long)]
    pub resume: bool,
}

pub fn run(args: &TrainSmartclipArgs) -> Result<()> {
    let model = super::load_model(args.model.as_deref())?;
    let state = args.out.join("smartclip-state.safetensors");
    let resume = super::train_clip::resume_from(&state, args.resume)?;
    let options = Options {
        resume,
        steps: args.steps,
        batch: args.batch.max(2),
        pool: args.pool,
        lr: args.lr,
        seed: args.seed,
    };
    let bar = super::train_clip::progress_bar(args.steps);
    let start = Instant::now();
    eprintln!("encoding {} training scenes…", options.pool);
    let (net, varmap) = smartclip::train(&model, &options, |progress| {
        let r = progress.report;
        if args.checkpoint_every > 0 && (r.step + 1) % args.checkpoint_every == 0 {
            let saved = progress
                .save_state(&state)
                .and_then(|()| smartclip::save(progress.net, progress.varmap, &args.out));
            if let Err(e) = saved {
                super::train_clip::say(&bar, format!("could not write {}: {e:#}", state.display()));
            }
        }
        bar.set_position(r.step as u64 + 1);
        bar.set_message(format!(
            "loss {:.3} (sparse {:.3}, sidm {:.3}, dism {:.3})",
            r.total, r.sparse, r.sidm, r.dism
        ));
        if r.step % 50 == 0 || r.step + 1 == args.steps {
            super::train_clip::say(
                &bar,
                format!(
                    "step {:>5}  loss {:.4}  sparse {:.3}  sidm {:.4}  dism {:.4}  {:.0} s",
                    r.step,
                    r.total,
                    r.sparse,
                    r.sidm,
                    r.dism,
                    start.elapsed().as_secs_f64()
                ),
            );
        }
    })?;
    bar.finish();
    smartclip::save(&net, &varmap, &args.out)?;
    eprintln!(
        "trained the mask network {} steps of {} in {:.1} min; wrote {}/smartclip.*",
        args.steps,
        options.batch,
        start.elapsed().as_secs_f64() / 60.0,
        args.out.display()
    );
    Ok(())
}
