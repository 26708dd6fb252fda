//! `clipscope train-clip`: trains the default model on the shapes world, with a progress bar.

use anyhow::Result;
use candle_core::DType;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

use crate::train::clip::{self, Options, TextSide};

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
    /// Weight of the hard-negative loss: each image against its true caption and its hard
    /// negative (one colour or shape word swapped) alone.
    #[arg(long, default_value_t = 0.0)]
    pub negative_weight: f64,
    /// Mix in captions that name shapes without their colours ("a star and a circle"), so a
    /// shape word cannot be matched by colour alone.
    #[arg(long)]
    pub shape_words: bool,
    /// Weight of the vocabulary loss: every image classified among the 25 training colour-shape
    /// phrases ("a red circle") and among the 5 shape words ("a circle"), the true ones the
    /// targets (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub vocabulary_weight: f64,
    /// Weight of the per-object loss: every object of every scene ranks its own phrase ("a
    /// purple cross") above its colour with each other shape ("a purple circle"), so a second or
    /// third object is read as surely as the first (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub object_weight: f64,
    /// Weight of the composition loss: the 25 training colour-shape phrases' text embeddings
    /// asked to add up as colour + shape (e(red circle) − e(red star) = e(blue circle) −
    /// e(blue star) wherever all four are training pairs), so held-out pairs compose (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub composition_weight: f64,
    /// Weight of the dense shape loss: every patch inside one object classified among the 5
    /// shape words ("a circle") by its own token, so each patch learns the shape it is part of,
    /// whatever its colour (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub patch_shape_weight: f64,
    /// Weight of the colour-field loss: beside every batch, --fields images of an object colour
    /// with no shape (a fill, a speckle, a fade), on which every shape word must score alike, so
    /// the model cannot read "purple" as "not a circle" (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub colour_field_weight: f64,
    /// Colour fields drawn a step for --colour-field-weight.
    #[arg(long, default_value_t = 8)]
    pub fields: usize,
    /// Weight of the recoloured-shape loss: beside every batch, --recoloured scenes of one object
    /// in a colour no object has (hue 30° or more from each), whose pooled and patch tokens must
    /// name its shape, which only the outline can tell there (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub recoloured_weight: f64,
    /// Recoloured scenes drawn a step for --recoloured-weight.
    #[arg(long, default_value_t = 16)]
    pub recoloured: usize,
    /// Share (0..1) of the recoloured scenes whose object is shrunk to between 1/12 and a
    /// quarter of the picture's side, where shapes are confused most.
    #[arg(long, default_value_t = 0.0)]
    pub recoloured_small: f64,
    /// Weight of the paired loss: each of the --recoloured scenes drawn again in its object's
    /// own colour, whose odds among the shape words are pulled to the recoloured scene's (KL),
    /// so that no object colour moves a shape word up or down (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub paired_weight: f64,
    /// Start from this model.safetensors (same towers; a position table of another patch grid
    /// is resized bicubically) instead of random weights.
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Input side in pixels (patch 16): train most steps at 112 and continue at 224 with --init.
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Write the training state (weights, optimiser moments, step) to DIR/state.safetensors
    /// every this many steps (0: never).
    #[arg(long, default_value_t = 50)]
    pub checkpoint_every: usize,
    /// Continue from DIR/state.safetensors where an earlier run with the same options stopped.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many steps, writing the state (the learning-rate schedule still runs to
    /// --steps): a later run with --resume continues, possibly with other loss weights.
    #[arg(long, value_name = "STEP")]
    pub stop_at: Option<usize>,
    /// Train the vision side only: the text tower and its projection stay as --init left them.
    #[arg(long)]
    pub freeze_text: bool,
    /// With --freeze-text: the text projection still learns (one linear map shared by every
    /// phrase, held-out ones included); the tower below it stays as --init left it.
    #[arg(long, requires = "freeze_text")]
    pub train_text_projection: bool,
    /// Layers of the vision tower. An --init model with fewer is deepened: its layers spread
    /// over the stack, the new ones starting as identities (the same function, more capacity).
    #[arg(long, default_value_t = 4)]
    pub vision_layers: usize,
    /// Width of the vision tower (heads of 32, MLP 4 × width). An --init model whose width
    /// divides it is widened: every unit copied, the copies reading 1/k of the old weight each
    /// (the same function, more capacity).
    #[arg(long, default_value_t = 128)]
    pub vision_width: usize,
    /// Token dropping: only this many patches of each image go through the vision tower in a
    /// step, every patch on an object first, then background ones at random (0: all). A step
    /// costs about its share of tokens; inference always sees every patch.
    #[arg(long, default_value_t = 0)]
    pub keep_tokens: usize,
    /// From random weights: start the patch embedding from the whitened principal components of
    /// training patches (edges as loud as colours) instead of noise. Ignored with --init.
    #[arg(long)]
    pub whiten_patches: bool,
}

pub fn run(args: &TrainClipArgs) -> Result<()> {
    let mut config = clip::default_config();
    let patch = config.vision.patch_size;
    if args.image_size == 0 || args.image_size % patch != 0 {
        anyhow::bail!("--image-size must be a positive multiple of the patch ({patch})");
    }
    config.vision.image_size = args.image_size;
    if args.vision_layers == 0 || args.vision_layers > 24 {
        anyhow::bail!("--vision-layers must be between 1 and 24");
    }
    config.vision.num_hidden_layers = args.vision_layers;
    if args.vision_width == 0 || args.vision_width % 32 != 0 || args.vision_width > 1024 {
        anyhow::bail!("--vision-width must be a multiple of 32, at most 1024");
    }
    if !(0.0..=1.0).contains(&args.recoloured_small) {
        anyhow::bail!("--recoloured-small is a share: between 0 and 1");
    }
    config.vision.hidden_size = args.vision_width;
    config.vision.num_attention_heads = args.vision_width / 32;
    config.vision.intermediate_size = 4 * args.vision_width;
    let state = args.out.join("state.safetensors");
    let resume = resume_from(&state, args.resume)?;
    let options = Options {
        config: config.clone(),
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        seed: args.seed,
        token_weight: args.token_weight,
        ground_weight: args.ground_weight,
        negative_weight: args.negative_weight,
        shape_words: args.shape_words,
        vocabulary_weight: args.vocabulary_weight,
        object_weight: args.object_weight,
        composition_weight: args.composition_weight,
        patch_shape_weight: args.patch_shape_weight,
        colour_field_weight: args.colour_field_weight,
        fields: args.fields,
        recoloured_weight: args.recoloured_weight,
        recoloured: args.recoloured,
        recoloured_small: args.recoloured_small,
        paired_weight: args.paired_weight,
        warmup: (args.steps / 20).max(1),
        init: args.init.clone(),
        resume,
        stop_at: args.stop_at,
        text: match (args.freeze_text, args.train_text_projection) {
            (false, _) => TextSide::Learns,
            (true, false) => TextSide::Frozen,
            (true, true) => TextSide::Projection,
        },
        keep_tokens: args.keep_tokens,
        whiten_patches: args.whiten_patches,
    };
    let end = args.stop_at.unwrap_or(args.steps).min(args.steps);
    let bar = progress_bar(args.steps);
    let start = Instant::now();
    let (varmap, _) = clip::train(&options, |progress| {
        let r = progress.report;
        if args.checkpoint_every > 0
            && ((r.step + 1) % args.checkpoint_every == 0 || r.step + 1 == end)
        {
            let saved = progress
                .save_state(&state)
                .and_then(|()| clip::save(progress.varmap, &config, &args.out, DType::F16));
            if let Err(e) = saved {
                say(&bar, format!("could not write {}: {e:#}", state.display()));
            }
        }
        bar.set_position(r.step as u64 + 1);
        bar.set_message(format!(
            "loss {:.3} (clip {:.3}, token {:.3}, ground {:.3})",
            r.loss, r.clip_loss, r.token_loss, r.ground_loss
        ));
        if r.step % 25 == 0 || r.step + 1 == args.steps || r.step < 3 {
            say(
                &bar,
                format!(
                    "step {:>5}  loss {:.4}  clip {:.4}  token {:.4}  ground {:.4}  \
                     negative {:.4}  vocabulary {:.4}  object {:.4}  composition {:.4}  patch shape {:.4}  \
                     colour field {:.4}  recoloured {:.4}  paired {:.4}  {:.0} s  \
                     (this step: data {:.2} s, forward {:.2} s, backward+update {:.2} s)",
                    r.step,
                    r.loss,
                    r.clip_loss,
                    r.token_loss,
                    r.ground_loss,
                    r.negative_loss,
                    r.vocabulary_loss,
                    r.object_loss,
                    r.composition_loss,
                    r.patch_shape_loss,
                    r.colour_field_loss,
                    r.recoloured_loss,
                    r.paired_loss,
                    start.elapsed().as_secs_f64(),
                    r.data_seconds,
                    r.forward_seconds,
                    r.backward_seconds,
                ),
            );
        }
    })?;
    bar.finish();
    clip::save(&varmap, &config, &args.out, DType::F16)?;
    eprintln!(
        "trained to step {end} of {} (batch {}) in {:.1} min; wrote {}",
        args.steps,
        args.batch,
        start.elapsed().as_secs_f64() / 60.0,
        args.out.display()
    );
    Ok(())
}

/// The training state to continue from with `--resume`: `state`, which must exist.
pub(super) fn resume_from(state: &std::path::Path, resume: bool) -> Result<Option<PathBuf>> {
    if !resume {
        return Ok(None);
    }
    if !state.is_file() {
        anyhow::bail!("--resume: there is no {} to continue from", state.display());
    }
    Ok(Some(state.to_path_buf()))
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
