//! The command line: `map` and `score` use the engine directly (no worker, no UI).

mod bench;
mod bench_siglip;
mod bench_views;
mod eval;
mod machine;
mod map;
mod measure;
mod score;
mod soak;
mod synth;
mod train_clip;
mod train_dcsm;
mod train_smartclip;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::engine::{preprocess, LoadedModel, ModelSource};

/// See where a CLIP model thinks each word of a prompt is in an image.
#[derive(Debug, Parser)]
#[command(name = "clipscope", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write every prompt's DCSM (map.json) and one overlay PNG per prompt and token.
    Map(map::MapArgs),
    /// Print plain CLIP scores of prompts against an image.
    Score(score::ScoreArgs),
    /// Write shapes-world scenes (PNG) with their descriptions and probes (scenes.jsonl).
    Synth(synth::SynthArgs),
    /// The probe benchmark: accuracy per probe family and split, and localisation.
    Eval(eval::EvalArgs),
    /// Train the default CLIP on the shapes world.
    TrainClip(train_clip::TrainClipArgs),
    /// Train SmartCLIP's mask network for a frozen CLIP.
    TrainSmartclip(train_smartclip::TrainSmartclipArgs),
    /// Time the engine on random-weight models at real shapes (JSON with --json).
    Bench(bench::BenchArgs),
    /// Train a DCSM scorer (the paper's CNN over dense cosine maps) for a frozen CLIP.
    TrainDcsm(train_dcsm::TrainDcsmArgs),
    /// Drive the worker with random edits and images for a while; print resident memory.
    Soak(soak::SoakArgs),
}

/// Runs one subcommand.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Map(args) => map::run(&args),
        Command::Score(args) => score::run(&args),
        Command::Synth(args) => synth::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::TrainClip(args) => train_clip::run(&args),
        Command::TrainDcsm(args) => train_dcsm::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::TrainSmartclip(args) => train_smartclip::run(&args),
        Command::Soak(args) => soak::run(&args),
    }
}

/// The options every scoring command shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Model folder (config.json + model.safetensors, or an OpenCLIP folder), Hugging Face hub
    /// id, or preset: openai-b32, openai-b16, openai-l14, openai-l14-336, laion-b32,
    /// metaclip-b16 (default: the embedded shapes-world model).
    #[arg(long, value_name = "DIR|HUB_ID|PRESET")]
    pub model: Option<String>,
    /// The image to score.
    #[arg(long, value_name = "PATH")]
    pub image: PathBuf,
    /// A prompt; repeat for more.
    #[arg(long = "prompt", value_name = "TEXT", required = true)]
    pub prompts: Vec<String>,
}

impl Common {
    /// Checks the prompts, loads the model and decodes the image.
    fn load(&self) -> Result<(LoadedModel, preprocess::Decoded)> {
        for (i, p) in self.prompts.iter().enumerate() {
            if p.trim().is_empty() {
                bail!("prompt {} is empty: give some text to score", i + 1);
            }
        }
        if !self.image.is_file() {
            bail!("image {} does not exist", self.image.display());
        }
        let model = load_model(self.model.as_deref())?;
        let image = preprocess::decode_file(&self.image)?;
        Ok((model, image))
    }
}

/// Loads `--model`, or the embedded default when it is absent.
pub fn load_model(arg: Option<&str>) -> Result<LoadedModel> {
    let source = arg.map_or(ModelSource::Embedded, ModelSource::parse);
    LoadedModel::load(&source, &mut |p| {
        if let Some(total) = p.total {
            eprint!(
                "\r{}: {:.1}/{:.1} MB",
                p.what,
                p.done as f64 / 1e6,
                total as f64 / 1e6
            );
        }
    })
    .with_context(|| format!("cannot load model {source}"))
}
