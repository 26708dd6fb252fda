//! Pillow's resampling, bit for bit: BICUBIC in 8-bit fixed point, NEAREST as its affine scale,
//! and the premultiplied-alpha round trip it makes for RGBA images.

use std::ops::Range;

/// Interleaved 8-bit pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl Plane {
    fn new(width: u32, height: u32, channels: usize) -> Self {
        Self {
            width,
            height,
            channels,
            data: vec![0; width as usize * height as usize * channels],
        }
    }

    fn index(&self, x: u32, y: u32) -> usize {
        (y as usize * self.width as usize + x as usize) * self.channels
    }

    /// The channels of pixel (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> &[u8] {
        let i = self.index(x, y);
        &self.data[i..i + self.channels]
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel (Keys, a = -0.5).
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's fixed-point weights of output index `i` when resampling `in_size` → `out_size`:
/// the first input index and one weight per input sample.
fn weights(in_size: u32, out_size: u32, i: i64) -> (usize, Vec<i64>) {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ss = 1.0 / filterscale;
    let center = (i as f64 + 0.5) * scale;
    let xmin = ((center - support + 0.5) as i64).max(0);
    let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
    let raw: Vec<f64> = (0..(xmax - xmin).max(0))
        .map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) * ss))
        .collect();
    let total: f64 = raw.iter().sum();
    let one = f64::from(1u32 << PRECISION_BITS);
    let weights = raw
        .iter()
        .map(|w| {
            let w = if total != 0.0 { w / total } else { *w };
            if w < 0.0 {
                (-0.5 + w * one) as i64
            } else {
                (0.5 + w * one) as i64
            }
        })
        .collect();
    (xmin as usize, weights)
}

fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The window `cols × rows` of `src` resized to `size` with BICUBIC: the horizontal pass first,
/// rounded to 8 bits, then the vertical one; a pass whose size is unchanged is skipped, as
/// Pillow skips it.
pub fn bicubic_window(src: &Plane, size: (u32, u32), cols: Range<i64>, rows: Range<i64>) -> Plane {
    let (w, h, ch) = (src.width, src.height, src.channels);
    let round = 1i64 << (PRECISION_BITS - 1);
    let width = (cols.end - cols.start).max(0) as u32;
    let mut horizontal = Plane::new(width, h, ch);
    for (ox, i) in cols.clone().enumerate() {
        if size.0 == w {
            for y in 0..h {
                let (o, s) = (horizontal.index(ox as u32, y), src.index(i as u32, y));
                horizontal.data[o..o + ch].copy_from_slice(&src.data[s..s + ch]);
            }
            continue;
        }
        let (xmin, k) = weights(w, size.0, i);
        for y in 0..h {
            let o = horizontal.index(ox as u32, y);
            for c in 0..ch {
                let mut acc = round;
                for (j, kk) in k.iter().enumerate() {
                    acc += i64::from(src.data[src.index((xmin + j) as u32, y) + c]) * kk;
                }
                horizontal.data[o + c] = clip8(acc);
            }
        }
    }
    let height = (rows.end - rows.start).max(0) as u32;
    let mut out = Plane::new(width, height, ch);
    for (oy, i) in rows.enumerate() {
        if size.1 == h {
            let (o, s) = (out.index(0, oy as u32), horizontal.index(0, i as u32));
            let n = width as usize * ch;
            out.data[o..o + n].copy_from_slice(&horizontal.data[s..s + n]);
            continue;
        }
        let (ymin, k) = weights(h, size.1, i);
        for x in 0..width {
            let o = out.index(x, oy as u32);
            for c in 0..ch {
                let mut acc = round;
                for (j, kk) in k.iter().enumerate() {
                    acc +=
                        i64::from(horizontal.data[horizontal.index(x, (ymin + j) as u32) + c]) * kk;
                }
                out.data[o + c] = clip8(acc);
            }
        }
    }
    out
}

/// Source indices of NEAREST when `input` samples become `output`, as Pillow's
/// `ImagingScaleAffine` steps them: start at half a step, add the step each time, truncate.
fn nearest_table(input: u32, output: u32) -> Vec<u32> {
    let step = f64::from(input) / f64::from(output);
    let mut at = step * 0.5;
    (0..output)
        .map(|_| {
            let i = if at < 0.0 {
                0
            } else {
                (at as u32).min(input - 1)
            };
            at += step;
            i
        })
        .collect()
}

/// The window `cols × rows` of `src` resized to `size` with NEAREST (Pillow's only filter for
/// palette images).
pub fn nearest_window(src: &Plane, size: (u32, u32), cols: Range<i64>, rows: Range<i64>) -> Plane {
    let xs = nearest_table(src.width, size.0);
    let ys = nearest_table(src.height, size.1);
    let ch = src.channels;
    let width = (cols.end - cols.start).max(0) as u32;
    let height = (rows.end - rows.start).max(0) as u32;
    let mut out = Plane::new(width, height, ch);
    for (oy, y) in rows.enumerate() {
        for (ox, x) in cols.clone().enumerate() {
            let s = src.index(xs[x as usize], ys[y as usize]);
            let o = out.index(ox as u32, oy as u32);
            out.data[o..o + ch].copy_from_slice(&src.data[s..s + ch]);
        }
    }
    out
}

/// RGBA → Pillow's "RGBa": each colour times alpha / 255, rounded as its `MULDIV255`.
pub fn premultiply(plane: &mut Plane) {
    for px in plane.data.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        for c in &mut px[..3] {
            let t = u32::from(*c) * a + 128;
            *c = (((t >> 8) + t) >> 8) as u8;
        }
    }
}

/// "RGBa" → RGBA: colours times 255 / alpha, truncated and clipped; alpha 0 and 255 unchanged.
pub fn unpremultiply(plane: &mut Plane) {
    for px in plane.data.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        if a != 0 && a != 255 {
            for c in &mut px[..3] {
                *c = ((255 * u32::from(*c)) / a).min(255) as u8;
            }
        }
    }
}

/// RGBA → RGB over an opaque white background, as Pillow's `alpha_composite` rounds it (7 bits
/// of extra precision): what `transformers`' `convert_to_rgb` does to images with alpha.
pub fn composite_on_white(plane: &Plane) -> Plane {
    const BITS: u32 = 7;
    let div255 = |a: u32| ((a >> 8) + a) >> 8;
    let mut out = Plane::new(plane.width, plane.height, 3);
    for (o, px) in out.data.chunks_exact_mut(3).zip(plane.data.chunks_exact(4)) {
        let a = u32::from(px[3]);
        if a == 0 {
            o.fill(255);
            continue;
        }
        let outa255 = a * 255 + 255 * (255 - a);
        let coef1 = a * 255 * 255 * (1 << BITS) / outa255;
        let coef2 = 255 * (1 << BITS) - coef1;
        for (c, s) in o.iter_mut().zip(&px[..3]) {
            let t = u32::from(*s) * coef1 + 255 * coef2 + (0x80 << BITS);
            *c = (div255(t) >> BITS) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premultiply_round_trip_loses_what_pillow_loses() {
        let mut p = Plane {
            width: 2,
            height: 1,
            channels: 4,
            data: vec![200, 100, 7, 128, 255, 255, 255, 0],
        };
        premultiply(&mut p);
        assert_eq!(p.data, vec![100, 50, 4, 128, 0, 0, 0, 0]);
        unpremultiply(&mut p);
        assert_eq!(p.data, vec![199, 99, 7, 128, 0, 0, 0, 0]);
    }

    #[test]
    fn nearest_takes_the_centre_sample() {
        assert_eq!(nearest_table(4, 2), vec![1, 3]);
        assert_eq!(nearest_table(3, 6), vec![0, 0, 1, 1, 2, 2]);
    }
}
