//! Colour maps and heatmap overlays as plain RGB images (shared by the CLI and the app's export).

use image::{imageops::FilterType, DynamicImage, Rgb, RgbImage};

use crate::io::preprocess::CropRect;

/// A value range mapped onto the colour map, symmetric around zero for a diverging map.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scale {
    pub lo: f32,
    pub hi: f32,
}

impl Scale {
    /// A symmetric scale covering every value given (at least ±1e-6).
    pub fn symmetric<'a>(values: impl IntoIterator<Item = &'a f32>) -> Self {
        let m = values.into_iter().fold(
            1e-6f32,
            |m, v| if v.is_finite() { m.max(v.abs()) } else { m },
        );
        Self { lo: -m, hi: m }
    }

    /// The map's own minimum to maximum (the middle colour is then the middle value, not zero).
    pub fn span<'a>(values: impl IntoIterator<Item = &'a f32>) -> Self {
        let (lo, hi) = values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        if lo.is_finite() && hi > lo {
            Self { lo, hi }
        } else {
            Self::symmetric(&[lo, hi])
        }
    }

    /// The position of `v` in the range, clamped to 0..=1.
    pub fn unit(&self, v: f32) -> f32 {
        if self.hi <= self.lo || !v.is_finite() {
            return 0.5;
        }
        ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
}

/// The diverging colour of `t` in 0..=1: blue (low), white (middle), red (high).
pub fn diverging(t: f32) -> [u8; 3] {
    // colorous' RdBu runs red → blue; flip it so that red means "high".
    let c = colorous::RED_BLUE.eval_continuous(1.0 - f64::from(t.clamp(0.0, 1.0)));
    [c.r, c.g, c.b]
}

/// The part of `image` the model saw, resized to `side`×`side`.
pub fn crop_view(image: &DynamicImage, crop: CropRect, side: u32) -> RgbImage {
    region_view(image, crop, (side, side))
}

/// The part of `image` under `region` (clamped to the image), resized to `size`.
pub fn region_view(image: &DynamicImage, crop: CropRect, size: (u32, u32)) -> RgbImage {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let x = crop.x.clamp(0.0, w - 1.0);
    let y = crop.y.clamp(0.0, h - 1.0);
    let cw = crop.w.min(w - x).max(1.0);
    let ch = crop.h.min(h - y).max(1.0);
    let part = image.crop_imm(
        x.round() as u32,
        y.round() as u32,
        cw.round() as u32,
        ch.round() as u32,
    );
    part.resize_exact(size.0, size.1, FilterType::Triangle)
        .to_rgb8()
}

/// Blends a `rows`×`cols` patch map over `base` with opacity `alpha`; `smooth` interpolates
/// bilinearly between patch centres instead of drawing square cells.
pub fn overlay(
    base: &RgbImage,
    map: &[f32],
    grid: (usize, usize),
    scale: Scale,
    alpha: f32,
    smooth: bool,
) -> RgbImage {
    let (rows, cols) = grid;
    let (w, h) = base.dimensions();
    let mut out = base.clone();
    for (px, py, pixel) in out.enumerate_pixels_mut() {
        let fx = (px as f32 + 0.5) / w as f32 * cols as f32;
        let fy = (py as f32 + 0.5) / h as f32 * rows as f32;
        let v = if smooth {
            bilinear(map, rows, cols, fx - 0.5, fy - 0.5)
        } else {
            map[(fy as usize).min(rows - 1) * cols + (fx as usize).min(cols - 1)]
        };
        let c = diverging(scale.unit(v));
        for k in 0..3 {
            pixel[k] =
                (f32::from(pixel[k]) * (1.0 - alpha) + f32::from(c[k]) * alpha).round() as u8;
        }
    }
    out
}

fn bilinear(map: &[f32], rows: usize, cols: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (cols - 1) as f32);
    let y = y.clamp(0.0, (rows - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(cols - 1), (y0 + 1).min(rows - 1));
    let (tx, ty) = (x - x0 as f32, y - y0 as f32);
    let at = |r: usize, c: usize| map[r * cols + c];
    let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
    let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// A square heatmap of a matrix (rows × cols cells of `cell` pixels), e.g. a whole DCSM.
pub fn matrix_image(values: &[f32], rows: usize, cols: usize, scale: Scale, cell: u32) -> RgbImage {
    RgbImage::from_fn(cols as u32 * cell, rows as u32 * cell, |x, y| {
        let v = values[(y / cell) as usize * cols + (x / cell) as usize];
        Rgb(diverging(scale.unit(v)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_map_runs_blue_white_red() {
        let (lo, mid, hi) = (diverging(0.0), diverging(0.5), diverging(1.0));
        assert!(lo[2] > lo[0], "low end is blue: {lo:?}");
        assert!(hi[0] > hi[2], "high end is red: {hi:?}");
        assert!(mid.iter().all(|c| *c > 200), "middle is light: {mid:?}");
    }

    #[test]
    fn span_stretches_to_the_values() {
        let s = Scale::span(&[0.2, 0.6, 0.4]);
        assert_eq!((s.lo, s.hi), (0.2, 0.6));
        assert!((s.unit(0.4) - 0.5).abs() < 1e-6);
        assert_eq!(Scale::span(&[]).unit(0.0), 0.5);
    }

    #[test]
    fn symmetric_scale_covers_values() {
        let s = Scale::symmetric(&[0.2, -0.5, 0.1]);
        assert_eq!((s.lo, s.hi), (-0.5, 0.5));
        assert_eq!(s.unit(0.0), 0.5);
        assert_eq!(s.unit(9.0), 1.0);
    }

    #[test]
    fn overlay_colours_the_right_cell() {
        let base = RgbImage::from_pixel(20, 20, Rgb([128, 128, 128]));
        // 2×2 grid, top-right cell high.
        let out = overlay(
            &base,
            &[0.0, 1.0, 0.0, 0.0],
            (2, 2),
            Scale { lo: -1.0, hi: 1.0 },
            1.0,
            false,
        );
        let tr = out.get_pixel(15, 5);
        let bl = out.get_pixel(5, 15);
        assert!(tr[0] > tr[2], "{tr:?}");
        assert!(bl.0.iter().all(|c| *c > 200), "{bl:?}");
    }
}
