//! `clipscope map`: every prompt's DCSM as JSON and one heatmap overlay PNG per token.

use anyhow::{Context, Result};
use serde_json::json;
use std::path::PathBuf;

use super::Common;
use crate::render::{self, Scale};

/// Side of the written overlay PNGs, in pixels.
const OVERLAY_SIDE: u32 = 336;

#[derive(Debug, clap::Args)]
pub struct MapArgs {
    #[command(flatten)]
    pub common: Common,
    /// Folder to write map.json and the PNGs into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: &MapArgs) -> Result<()> {
    let (model, image) = args.common.load()?;
    let encoded = model.encode_decoded(&image)?;
    let prompts = model.encode_prompts(&args.common.prompts)?;
    let scores = model.score(&encoded, &prompts)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    // One locked scale for every patch value of every prompt, so colours compare across files.
    let scale = Scale::symmetric(
        scores
            .iter()
            .flat_map(|s| s.dcsm.data[s.dcsm.cols..].iter()),
    );
    let base = render::crop_view(&image.image, encoded.crop, OVERLAY_SIDE);
    let (rows, cols) = encoded.grid;
    let mut entries = Vec::new();
    for (p, s) in scores.iter().enumerate() {
        let mut files = Vec::new();
        for (t, label) in s.tokenized.labels.iter().enumerate() {
            let name = format!("prompt{p:02}_token{t:02}_{}.png", file_safe(label));
            let map = crate::dcsm::patch_map(&s.dcsm, t);
            let png = render::overlay(&base, &map, encoded.grid, scale, 0.6, false);
            let path = args.out.join(&name);
            png.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            files.push(name);
        }
        entries.push(json!({
            "text": s.tokenized.text,
            "token_ids": s.tokenized.ids,
            "tokens": s.tokenized.tokens,
            "truncated": s.tokenized.truncated,
            "pooled_at": s.tokenized.eos_index(),
            "cleaned_text": s.tokenized.cleaned,
            "dcsm": s.dcsm.to_rows(),
            "clip_cosine": s.clip_cosine,
            "clip_prob": s.clip_prob,
            "labels": s.tokenized.labels,
            "words": s.tokenized.words,
            "overlays": files,
        }));
    }
    let c = encoded.crop;
    let doc = json!({
        "model": model.name(),
        "pipeline": model.pipeline(),
        "image": args.common.image.display().to_string(),
        "grid": [rows, cols],
        "crop": [c.x, c.y, c.w, c.h],
        "scale": [scale.lo, scale.hi],
        "prompts": entries,
    });
    let path = args.out.join("map.json");
    std::fs::write(&path, serde_json::to_string(&doc)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "wrote {} and {} overlay PNGs to {}",
        path.display(),
        scores.iter().map(|s| s.tokenized.ids.len()).sum::<usize>(),
        args.out.display()
    );
    Ok(())
}

/// A token label as a file-name fragment.
fn file_safe(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .take(24)
        .collect();
    if s.is_empty() {
        "tok".into()
    } else {
        s
    }
}
