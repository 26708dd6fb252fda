//! Where a view's windows lie on the image, and how tiled windows' maps average into one map
//! over the whole picture (tools/MAP_SOURCES.md §9).

use serde::Serialize;

use crate::dcsm::Matrix;
use crate::io::preprocess::CropRect;

/// Where the windows of a view lie on the resized image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// Window side in pixels (the input resolution).
    pub window: u32,
    pub patch: u32,
    /// The resized image (the centre crop's source, or the whole image for tiles).
    pub resized: (u32, u32),
    /// Offsets of the windows along the long axis (one window at the crop without tiles).
    pub offsets: Vec<u32>,
    /// Whether the long axis is x (wide image).
    pub wide: bool,
    pub tiles: bool,
    /// The decoded image's size.
    pub original: (u32, u32),
    /// The centre crop's rectangle in original pixels (without tiles).
    pub crop: CropRect,
}

impl Layout {
    /// (rows, cols) of the map.
    pub fn grid(&self) -> (usize, usize) {
        let g = (self.window / self.patch) as usize;
        if !self.tiles {
            return (g, g);
        }
        let long = if self.wide {
            self.resized.0
        } else {
            self.resized.1
        };
        let cells = long.div_ceil(self.patch) as usize;
        if self.wide {
            (g, cells)
        } else {
            (cells, g)
        }
    }

    /// The map's rectangle in original pixels: the crop, or the whole image (its last cell along
    /// the long side covers what is left of the image, up to one patch).
    pub fn region(&self) -> CropRect {
        if !self.tiles {
            return self.crop;
        }
        CropRect {
            x: 0.0,
            y: 0.0,
            w: self.original.0 as f32,
            h: self.original.1 as f32,
        }
    }

    /// Each window in original pixels.
    pub fn windows(&self) -> Vec<CropRect> {
        if !self.tiles {
            return vec![self.crop];
        }
        let (sx, sy) = self.scale();
        let c = self.window as f32;
        self.offsets
            .iter()
            .map(|&o| {
                let o = o as f32;
                let (x, y) = if self.wide { (o, 0.0) } else { (0.0, o) };
                CropRect {
                    x: x * sx,
                    y: y * sy,
                    w: c * sx,
                    h: c * sy,
                }
            })
            .collect()
    }

    fn scale(&self) -> (f32, f32) {
        (
            self.original.0 as f32 / self.resized.0 as f32,
            self.original.1 as f32 / self.resized.1 as f32,
        )
    }
}

/// The c×c window at offset `o` of the long axis from CHW pixels of size (w, h).
pub(super) fn window_pixels(
    full: &[f32],
    (w, h): (u32, u32),
    c: u32,
    o: u32,
    wide: bool,
) -> Vec<f32> {
    let (w, h, c, o) = (w as usize, h as usize, c as usize, o as usize);
    let mut out = Vec::with_capacity(3 * c * c);
    for ch in 0..3 {
        for y in 0..c {
            let (row, x0) = if wide { (y, o) } else { (y + o, 0) };
            let start = ch * w * h + row * w + x0;
            out.extend_from_slice(&full[start..start + c]);
        }
    }
    out
}

/// One prompt's tiled map: each pixel of the long axis takes the value of the window patch over
/// it, averaged over the windows covering it; each cell averages its pixels (tools/MAP_SOURCES.md §9).
pub(super) fn combine(layout: &Layout, windows: &[&Matrix]) -> Matrix {
    let (rows, cols) = layout.grid();
    let g = (layout.window / layout.patch) as usize;
    let (p, c) = (layout.patch as usize, layout.window as usize);
    let long = if layout.wide {
        layout.resized.0
    } else {
        layout.resized.1
    } as usize;
    let tokens = windows.first().map_or(0, |m| m.cols);
    let mut out = Matrix {
        rows: 1 + rows * cols,
        cols: tokens,
        data: vec![0.0; (1 + rows * cols) * tokens],
        cls_row: true,
    };
    for t in 0..tokens {
        out.data[t] = windows.iter().map(|m| m.get(0, t)).sum::<f32>() / windows.len() as f32;
        for across in 0..g {
            let mut pixel = vec![(0f64, 0u32); long];
            for (m, &o) in windows.iter().zip(&layout.offsets) {
                for (x, slot) in pixel.iter_mut().enumerate().skip(o as usize).take(c) {
                    let along = (x - o as usize) / p;
                    let patch = if layout.wide {
                        across * g + along
                    } else {
                        along * g + across
                    };
                    slot.0 += f64::from(m.get(1 + patch, t));
                    slot.1 += 1;
                }
            }
            for cell in 0..long.div_ceil(p) {
                let span = &pixel[cell * p..((cell + 1) * p).min(long)];
                let mean =
                    span.iter().map(|(s, n)| s / f64::from(*n)).sum::<f64>() / span.len() as f64;
                let (r, col) = if layout.wide {
                    (across, cell)
                } else {
                    (cell, across)
                };
                out.data[(1 + r * cols + col) * tokens + t] = mean as f32;
            }
        }
    }
    out
}
