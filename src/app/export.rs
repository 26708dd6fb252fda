//! Export of what is on screen: overlay, token grid and matrix as PNG, the matrix as CSV.

use image::{DynamicImage, RgbaImage};
use std::path::Path;

use super::ClipscopeApp;
use crate::dcsm::patch_map;
use crate::render::{self, Scale};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Overlay,
    Grid,
    MatrixPng,
    MatrixCsv,
}

/// The file name a save dialog proposes for `what`, and its extension.
pub fn file_name(what: What) -> (&'static str, &'static str) {
    match what {
        What::Overlay => ("overlay.png", "png"),
        What::Grid => ("token-grid.png", "png"),
        What::MatrixPng => ("dcsm.png", "png"),
        What::MatrixCsv => ("dcsm.csv", "csv"),
    }
}

/// Writes `what` to the path a dialog chose (atomically) and reports the outcome.
pub fn save(app: &mut ClipscopeApp, what: What, path: &Path) {
    match export(app, what, path) {
        Ok(()) => app.notice(format!("saved {}", path.display()), false),
        Err(e) => app.notice(format!("could not save {}: {e:#}", path.display()), true),
    }
}

/// Writes `what` for the current image and prompt to `path`.
pub fn export(app: &ClipscopeApp, what: What, path: &Path) -> anyhow::Result<()> {
    let entry = app
        .current_entry()
        .ok_or_else(|| anyhow::anyhow!("no image"))?;
    let info = app.map_geometry(
        entry
            .info()
            .ok_or_else(|| anyhow::anyhow!("the image is not encoded yet"))?,
    );
    let score = app
        .score_of(app.selection.prompt)
        .ok_or_else(|| anyhow::anyhow!("no scores yet"))?;
    let m = &score.dcsm;
    if what == What::MatrixCsv {
        crate::atomic::write(path, matrix_csv(score).as_bytes())?;
        return Ok(());
    }
    // The preview is the original scaled down: scale the crop the same way.
    let p = &info.preview;
    let preview = RgbaImage::from_raw(p.width, p.height, p.rgba.clone())
        .ok_or_else(|| anyhow::anyhow!("bad preview"))?;
    let f = p.width as f32 / info.original.0 as f32;
    let c = info.crop;
    let crop = crate::engine::CropRect {
        x: c.x * f,
        y: c.y * f,
        w: c.w * f,
        h: c.h * f,
    };
    let base = render::crop_view(&DynamicImage::ImageRgba8(preview), crop, 336);
    let alpha = app.settings.opacity;
    let smooth = app.settings.smooth;
    let image = match what {
        What::Overlay => {
            let t = app.active_token().unwrap_or(0);
            let map = patch_map(m, t);
            render::overlay(&base, &map, info.grid, app.scale_for(&map), alpha, smooth)
        }
        What::Grid => {
            let n = m.cols;
            let per_row = n.min(6);
            let rows = n.div_ceil(per_row);
            let tile = 224u32;
            let mut sheet = image::RgbImage::from_pixel(
                per_row as u32 * tile,
                rows as u32 * tile,
                image::Rgb([255, 255, 255]),
            );
            let small = image::imageops::resize(
                &base,
                tile - 8,
                tile - 8,
                image::imageops::FilterType::Triangle,
            );
            for t in 0..n {
                let map = patch_map(m, t);
                let o =
                    render::overlay(&small, &map, info.grid, app.scale_for(&map), alpha, smooth);
                image::imageops::replace(
                    &mut sheet,
                    &o,
                    ((t % per_row) as u32 * tile + 4).into(),
                    ((t / per_row) as u32 * tile + 4).into(),
                );
            }
            sheet
        }
        // (The CSV was written above; both matrix exports share this branch.)
        What::MatrixPng | What::MatrixCsv => {
            let scale = Scale::symmetric(&m.data);
            render::matrix_image(&m.data, m.rows, m.cols, scale, 12)
        }
    };
    let mut bytes = Vec::new();
    image.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    crate::atomic::write(path, &bytes)?;
    Ok(())
}

/// The DCSM as CSV: a header of `index:token`, then one line per image row (CLS, patch1, …).
fn matrix_csv(score: &crate::engine::PromptScore) -> String {
    let m = &score.dcsm;
    let mut csv = String::from("row");
    for (t, label) in score.tokenized.labels.iter().enumerate() {
        csv.push_str(&format!(",{t}:{}", label.replace([',', '"', '\n'], "_")));
    }
    csv.push('\n');
    let first = m.first_patch_row();
    for r in 0..m.rows {
        if r < first {
            csv.push_str("CLS");
        } else {
            csv.push_str(&format!("patch{}", r - first + 1));
        }
        for c in 0..m.cols {
            csv.push_str(&format!(",{}", m.get(r, c)));
        }
        csv.push('\n');
    }
    csv
}
