//! `clipscope map`: every prompt's DCSM as JSON and one heatmap overlay PNG per token, from any
//! map source, resolution or tiling.

use anyhow::{Context, Result};
use serde_json::json;
use std::path::PathBuf;

use super::Common;
use crate::engine::{Family, MapSource, MapView};
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
    /// Where the map's image tokens come from: raw (the DCSM paper's), maskclip, sclip,
    /// clearclip, naclip, or layer:N (block N from 1 through the final norm and projection).
    #[arg(long, default_value = "raw", value_name = "SOURCE")]
    pub source: MapSource,
    /// CLIP Surgery: subtract from each patch what all prompts share (needs two or more).
    #[arg(long)]
    pub surgery: bool,
    /// Input side for the maps in pixels, a multiple of the patch (e.g. 448 for 28×28 patches
    /// on B/16); position embeddings are interpolated. Scores stay at the model's size.
    #[arg(long, value_name = "PX")]
    pub resolution: Option<u32>,
    /// Slide windows over the whole image (shortest side to the window, half overlap) and
    /// average their maps, instead of the centre crop.
    #[arg(long)]
    pub tiles: bool,
}

pub fn run(args: &MapArgs) -> Result<()> {
    let (model, image) = args.common.load()?;
    let encoded = model.encode_decoded(&image)?;
    let prompts = model.encode_prompts(&args.common.prompts)?;
    let mut scores = model.score(&encoded, &prompts)?;
    let view = MapView {
        source: args.source,
        surgery: args.surgery,
        resolution: args.resolution,
        tiles: args.tiles,
    };
    if view.surgery && args.common.prompts.len() < 2 {
        eprintln!(
            "note: surgery with one prompt subtracts that prompt from itself; give two or more"
        );
    }
    model.check_source(view.source)?;
    // SigLIP's plain view is the scores' own maps (it has no other view to run).
    let (grid, region, windows, offsets) = if model.family() == Family::Siglip && view.is_plain() {
        (model.grid(), encoded.crop, vec![encoded.crop], vec![0])
    } else {
        let dense = model.dense_image(&image, view.resolution, view.tiles)?;
        let maps = model.view_maps(&dense, &view, &prompts)?;
        // The scores read the raw centre crop; the maps written are the view's.
        for (s, m) in scores.iter_mut().zip(&maps.maps) {
            s.dcsm = m.clone();
        }
        (maps.grid, maps.region, maps.windows, dense.layout.offsets)
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    // One locked scale for every patch value of every prompt, so colours compare across files.
    let scale = Scale::symmetric(
        scores
            .iter()
            .flat_map(|s| s.dcsm.data[s.dcsm.first_patch_row() * s.dcsm.cols..].iter()),
    );
    let (rows, cols) = grid;
    let width = (OVERLAY_SIDE as usize * cols / rows.max(1)).max(1) as u32;
    let base = render::region_view(&image.image, region, (width, OVERLAY_SIDE));
    let mut entries = Vec::new();
    for (p, s) in scores.iter().enumerate() {
        let mut files = Vec::new();
        for (t, label) in s.tokenized.labels.iter().enumerate() {
            let name = format!("prompt{p:02}_token{t:02}_{}.png", file_safe(label));
            let map = crate::dcsm::patch_map(&s.dcsm, t);
            let png = render::overlay(&base, &map, grid, scale, 0.6, false);
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
    let r = region;
    let rect = |w: &crate::engine::CropRect| [w.x, w.y, w.w, w.h];
    let doc = json!({
        "model": model.name(),
        "family": model.family(),
        "score_kind": model.family().score_kind(),
        "cls_row": model.family() == Family::Clip,
        "pipeline": model.pipeline(),
        "image": args.common.image.display().to_string(),
        "source": view.label(),
        "view": view,
        "source_note": view.source.explain(),
        "grid": [rows, cols],
        "crop": [c.x, c.y, c.w, c.h],
        "region": [r.x, r.y, r.w, r.h],
        "windows": windows.iter().map(rect).collect::<Vec<_>>(),
        "window_offsets": offsets,
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
