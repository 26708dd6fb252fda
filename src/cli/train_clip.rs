//! `clipscope train-clip`: trains the default model on the shapes world, with a progress bar.

use anyhow::Result;
use candle_core::DType;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

use crate::train::clip::{self, Options};

#[derive(Debug, clap::Args)]
pub struct TrainClipArgs {
    /// Folder for the trained model (config.json + model.safetensors, f16).
    #[arg(long, value_name = "DIR", default_value = "runs/default-model")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Weight of the token-level (FILIP-style) loss; 0 = plain CLIP loss.
    #[arg(long, default_value_t = 1.0)]
    pub token_weight: f64,
    /// Weight of the grounding loss: the colour and shape tokens of every object a caption
    /// names should match the patch holding that object best (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub ground_weight: f64,
    /// Continue from this model.safetensors (same shape) instead of random weights.
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Also write a checkpoint every this many steps (0: only at the end).
    #[arg(long, default_value_t = 250)]
    pub checkpoint_every: usize,
}

pub fn run(args: &TrainClipArgs) -> Result<()> {
    let config = clip::default_config();
    let options = Options {
        config: config.clone(),
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        seed: args.seed,
        token_weight: args.token_weight,
        ground_weight: args.ground_weight,
        warmup: (args.steps / 20).max(1),
        init: args.init.clone(),
    };
    let bar = progress_bar(args.steps);
    let start = Instant::now();
    let (varmap, _) = clip::train(&options, |r, vars| {
        if args.checkpoint_every > 0
            && (r.step + 1) % args.checkpoint_every == 0
            && r.step + 1 < args.steps
        {
            let dir = args.out.join(format!("checkpoint-{}", r.step + 1));
            if let Err(e) = clip::save(vars, &config, &dir, DType::F32) {
                say(
                    &bar,
                    format!("could not write checkpoint {}: {e:#}", dir.display()),
                );
            }
        }
        bar.set_position(r.step as u64 + 1);
        bar.set_message(format!(
            "loss {:.3} (clip {:.3}, token {:.3}, ground {:.3})",
            r.loss, r.clip_loss, r.token_loss, r.ground_loss
        ));
        if r.step % 50 == 0 || r.step + 1 == args.steps {
            say(
                &bar,
                format!(
                    "step {:>5}  loss {:.4}  clip {:.4}  token {:.4}  ground {:.4}  {:.0} s",
                    r.step,
                    r.loss,
                    r.clip_loss,
                    r.token_loss,
                    r.ground_loss,
                    start.elapsed().as_secs_f64()
                ),
            );
        }
    })?;
    bar.finish();
    clip::save(&varmap, &config, &args.out, DType::F16)?;
    eprintln!(
        "trained {} steps of {} in {:.1} min; wrote {}",
        args.steps,
        args.batch,
        start.elapsed().as_secs_f64() / 60.0,
        args.out.display()
    );
    Ok(())
}

/// A bar counting training steps, with speed, ETA and the latest losses.
pub(super) fn progress_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// A log line above the bar, or on stderr when the bar is hidden (not a terminal).
pub(super) fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
