//! `clipscope train-dcsm`: trains a DCSM scorer for a frozen CLIP on the shapes world.

use anyhow::Result;
use std::path::PathBuf;
use std::time::Instant;

use crate::dcsm::scorer::{Architecture, ColumnMode};
use crate::train::dcsm::{self, Options};
use crate::world::{Family, FAMILIES};

#[derive(Debug, clap::Args)]
pub struct TrainDcsmArgs {
    /// Backbone (folder or hub id; default: the embedded shapes-world model). It stays frozen.
    #[arg(long, value_name = "DIR|HUB_ID")]
    pub model: Option<String>,
    /// Folder to write `scorer.json` + `scorer.safetensors` (`scorer-grid.*` for the grid variant).
    #[arg(long, value_name = "DIR", default_value = "runs/dcsm")]
    pub out: PathBuf,
    /// `paper`: 3×3 convolutions over the flattened map; `grid`: over the 2-D patch grid.
    #[arg(long, default_value = "paper", value_parser = ["paper", "grid"])]
    pub architecture: String,
    /// Functional-word columns: `aligned` (the word's own token) or `paper` (the reference's index).
    #[arg(long, default_value = "aligned", value_parser = ["aligned", "paper"])]
    pub mode: String,
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Scenes per step (each with its opposite: a 2n × 2n logit matrix).
    #[arg(long, default_value_t = 16)]
    pub scenes: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Comma-separated probe families to train on (description, binding, spatial, negation,
    /// size), drawn uniformly from the list: repeat one to weigh it up. Default: all once.
    #[arg(long, value_name = "LIST")]
    pub families: Option<String>,
    /// With --pairs: z-score each image's two maps together, as scoring a probe does, instead
    /// of the whole batch (the paper's training).
    #[arg(long)]
    pub zscore_per_image: bool,
    /// Continue from this scorer (`scorer*.safetensors` of the same architecture and shape).
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Each image against its own and its opposite caption only (not the whole batch).
    #[arg(long)]
    pub pairs: bool,
    /// Write the scorer so far and the training state (`<out>/<stem>-state.safetensors`)
    /// every this many steps (0: never).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Continue from `<out>/<stem>-state.safetensors` where an earlier run with the same
    /// options stopped.
    #[arg(long)]
    pub resume: bool,
}

pub fn run(args: &TrainDcsmArgs) -> Result<()> {
    let model = super::load_model(args.model.as_deref())?;
    let (architecture, stem) = match args.architecture.as_str() {
        "grid" => (Architecture::Grid, "scorer-grid"),
        _ => (Architecture::Paper, "scorer"),
    };
    let mode = match args.mode.as_str() {
        "paper" => ColumnMode::Paper,
        _ => ColumnMode::Aligned,
    };
    let state = args.out.join(format!("{stem}-state.safetensors"));
    let resume = super::train_clip::resume_from(&state, args.resume)?;
    let options = Options {
        resume,
        architecture,
        mode,
        steps: args.steps,
        scenes: args.scenes.max(1),
        lr: args.lr,
        seed: args.seed,
        pairs: args.pairs,
        families: parse_families(args.families.as_deref())?,
        init: args.init.clone(),
        zscore_per_image: args.zscore_per_image,
    };
    let bar = super::train_clip::progress_bar(args.steps);
    let start = Instant::now();
    let (mut loss_avg, mut acc_avg) = (0.0f32, 0.0f32);
    let (scorer, varmap) = dcsm::train(&model, &options, |progress| {
        let r = progress.report;
        let done = r.step + 1;
        if args.checkpoint_every > 0 && done % args.checkpoint_every == 0 {
            let saved = progress
                .save_state(&state)
                .and_then(|()| dcsm::save(progress.scorer, progress.varmap, &args.out, stem));
            if let Err(e) = saved {
                super::train_clip::say(&bar, format!("could not write {}: {e:#}", state.display()));
            }
        }
        let w = if r.step == 0 || loss_avg == 0.0 {
            1.0
        } else {
            0.05
        };
        loss_avg += w * (r.loss - loss_avg);
        acc_avg += w * (r.accuracy - acc_avg);
        bar.set_position(r.step as u64 + 1);
        bar.set_message(format!("loss {loss_avg:.3}  batch accuracy {acc_avg:.2}"));
        if r.step % 100 == 0 || r.step + 1 == args.steps {
            super::train_clip::say(
                &bar,
                format!(
                    "step {:>5}  loss {loss_avg:.4}  batch accuracy {acc_avg:.3}  {:.0} s",
                    r.step,
                    start.elapsed().as_secs_f64()
                ),
            );
        }
    })?;
    bar.finish();
    dcsm::save(&scorer, &varmap, &args.out, stem)?;
    eprintln!(
        "trained a {} scorer ({} mode) for {} steps of {} scenes in {:.1} min; wrote {}/{stem}.*",
        args.architecture,
        args.mode,
        args.steps,
        options.scenes,
        start.elapsed().as_secs_f64() / 60.0,
        args.out.display()
    );
    Ok(())
}

fn parse_families(list: Option<&str>) -> Result<Vec<Family>> {
    let Some(list) = list else {
        return Ok(FAMILIES.to_vec());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            FAMILIES
                .iter()
                .copied()
                .find(|f| f.name() == name)
                .ok_or_else(|| anyhow::anyhow!("unknown family {name:?}"))
        })
        .collect()
}
