//! Image decoding and CLIP preprocessing as `CLIPImageProcessor` does it, keeping the crop rectangle.

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::Path;

use crate::error::ModelError;

/// Largest accepted side of an image, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (about a 100-megapixel photo).
pub const MAX_PIXELS: u64 = 100_000_000;
/// The largest image file read (an uncompressed 100-megapixel RGBA image is 400 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

const OPENAI_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const OPENAI_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// How images are turned into model input (`preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreprocessConfig {
    /// The shortest edge after resizing.
    pub shortest_edge: u32,
    /// The side of the square centre crop (the model's `image_size`).
    pub crop: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl PreprocessConfig {
    /// OpenAI's values for a model of input size `image_size`.
    pub fn openai(image_size: usize) -> Self {
        let s = image_size as u32;
        Self {
            shortest_edge: s,
            crop: s,
            mean: OPENAI_MEAN,
            std: OPENAI_STD,
        }
    }

    /// Reads `preprocessor_config.json`; sizes must agree with the model's `image_size`.
    pub fn from_json(json: &str, image_size: usize) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Size {
            Side(u32),
            Edge { shortest_edge: u32 },
            Square { height: u32, width: u32 },
        }
        #[derive(Deserialize)]
        struct Raw {
            size: Option<Size>,
            crop_size: Option<Size>,
            image_mean: Option<[f32; 3]>,
            image_std: Option<[f32; 3]>,
        }
        let bad = |m: String| ModelError::Config(format!("preprocessor_config.json: {m}"));
        let raw: Raw = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let mut config = Self::openai(image_size);
        let side = |s: Size| match s {
            Size::Side(v) | Size::Edge { shortest_edge: v } => Ok(v),
            Size::Square { height, width } if height == width => Ok(height),
            Size::Square { height, width } => {
                Err(bad(format!("crop {width}×{height} is not square")))
            }
        };
        if let Some(s) = raw.size {
            config.shortest_edge = side(s)?;
        }
        if let Some(s) = raw.crop_size {
            config.crop = side(s)?;
        }
        if config.crop as usize != image_size {
            return Err(bad(format!(
                "crop size {} differs from the model's image_size {image_size}",
                config.crop
            )));
        }
        config.shortest_edge = config.shortest_edge.max(config.crop);
        config.mean = raw.image_mean.unwrap_or(config.mean);
        config.std = raw.image_std.unwrap_or(config.std);
        if config.std.iter().any(|s| *s <= 0.0) {
            return Err(bad("image_std must be positive".into()));
        }
        Ok(config)
    }
}

/// The part of the original image the model saw, in original pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropRect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

/// Model input for one image: CHW floats, normalised.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    pub pixels: Vec<f32>,
    pub side: usize,
    pub crop: CropRect,
    /// Width and height of the decoded (EXIF-rotated) image.
    pub original: (u32, u32),
}

/// Decodes an image file: any format the `image` crate reads, EXIF rotation applied, first frame
/// of an animation, bounded size.
pub fn decode_file(path: &Path) -> Result<DynamicImage, ModelError> {
    let bytes = super::read_bounded(path, MAX_FILE_BYTES)?;
    decode_bytes(&bytes).map_err(|e| match e {
        ModelError::Image(m) => ModelError::Image(format!("{}: {m}", path.display())),
        ModelError::Decode { what, source } => ModelError::Decode {
            what: format!("{}: {what}", path.display()),
            source,
        },
        other => other,
    })
}

/// Decodes an image held in memory (see [`decode_file`]).
pub fn decode_bytes(bytes: &[u8]) -> Result<DynamicImage, ModelError> {
    if bytes.is_empty() {
        return Err(ModelError::Image("the file is empty (0 bytes)".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ModelError::Decode {
            what: "cannot read the file".into(),
            source: e.into(),
        })?;
    if reader.format().is_none() {
        return Err(ModelError::Image(
            "not an image this program can read (unknown format)".into(),
        ));
    }
    let mut decoder = reader.into_decoder().map_err(|e| ModelError::Decode {
        what: "cannot decode".into(),
        source: e,
    })?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(ModelError::Image(format!(
            "the image has no pixels ({w}×{h})"
        )));
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(ModelError::Image(format!(
            "the image is {w}×{h} pixels, larger than this program accepts \
             ({MAX_SIDE} pixels a side, {} megapixels); scale it down first",
            MAX_PIXELS / 1_000_000
        )));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| ModelError::Decode {
        what: "cannot decode".into(),
        source: e,
    })?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// The size after resizing the shortest edge to `edge`, as `transformers` computes it
/// (long side truncated toward zero).
pub fn resized_size(w: u32, h: u32, edge: u32) -> (u32, u32) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    if short == edge {
        return (w, h);
    }
    let new_long = ((u64::from(edge) * u64::from(long)) / u64::from(short)).max(1) as u32;
    if w <= h {
        (edge, new_long)
    } else {
        (new_long, edge)
    }
}

/// Resize (bicubic), centre crop, rescale and normalise, as `CLIPImageProcessor` does with
/// Pillow. Only the cropped part of the resized image is computed, bit-exact with Pillow's
/// resampling, so a 10000×10 image costs no 224000×224 intermediate.
pub fn preprocess(image: &DynamicImage, config: &PreprocessConfig) -> Preprocessed {
    let rgb: RgbImage = image.to_rgb8();
    let (w, h) = rgb.dimensions();
    let (rw, rh) = resized_size(w, h, config.shortest_edge);
    let c = config.crop;
    // transformers: top = (h - crop) // 2, left = (w - crop) // 2; smaller images are zero-padded.
    let left = (i64::from(rw) - i64::from(c)).div_euclid(2);
    let top = (i64::from(rh) - i64::from(c)).div_euclid(2);
    let cols = visible(left, c, rw);
    let rows = visible(top, c, rh);
    let view = pil_bicubic_window(&rgb, (rw, rh), cols.clone(), rows.clone());
    let side = c as usize;
    let mut pixels = vec![0.0f32; 3 * side * side];
    for y in 0..side {
        for x in 0..side {
            let (sx, sy) = (left + x as i64, top + y as i64);
            let inside = cols.contains(&sx) && rows.contains(&sy);
            for ch in 0..3 {
                // transformers rescales in double precision, then normalises in single.
                let v = if inside {
                    let px = view.get_pixel((sx - cols.start) as u32, (sy - rows.start) as u32)[ch];
                    (f64::from(px) * (1.0 / 255.0)) as f32
                } else {
                    0.0
                };
                pixels[ch * side * side + y * side + x] = (v - config.mean[ch]) / config.std[ch];
            }
        }
    }
    let (sx, sy) = (w as f32 / rw as f32, h as f32 / rh as f32);
    Preprocessed {
        pixels,
        side,
        crop: CropRect {
            x: left as f32 * sx,
            y: top as f32 * sy,
            w: c as f32 * sx,
            h: c as f32 * sy,
        },
        original: (w, h),
    }
}

/// The indices of `start..start + len` that fall inside `0..size`.
fn visible(start: i64, len: u32, size: u32) -> std::ops::Range<i64> {
    start.max(0)..(start + i64::from(len)).min(i64::from(size))
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
fn pil_weights(in_size: u32, out_size: u32, i: i64) -> (usize, Vec<i64>) {
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

/// The window `cols × rows` of `rgb` resized to `size` with Pillow's BICUBIC: horizontal pass
/// first, rounded to 8 bits, then the vertical pass.
fn pil_bicubic_window(
    rgb: &RgbImage,
    size: (u32, u32),
    cols: std::ops::Range<i64>,
    rows: std::ops::Range<i64>,
) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let round = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass over every input row (skipped when the width is unchanged).
    let width = (cols.end - cols.start).max(0) as u32;
    let horizontal = if size.0 == w {
        RgbImage::from_fn(width, h, |x, y| *rgb.get_pixel(x + cols.start as u32, y))
    } else {
        let mut out = RgbImage::new(width, h);
        for (ox, i) in cols.clone().enumerate() {
            let (xmin, k) = pil_weights(w, size.0, i);
            for y in 0..h {
                let mut acc = [round; 3];
                for (j, kk) in k.iter().enumerate() {
                    let p = rgb.get_pixel((xmin + j) as u32, y);
                    for ch in 0..3 {
                        acc[ch] += i64::from(p[ch]) * kk;
                    }
                }
                out.put_pixel(ox as u32, y, image::Rgb(acc.map(clip8)));
            }
        }
        out
    };
    let height = (rows.end - rows.start).max(0) as u32;
    if size.1 == h {
        return RgbImage::from_fn(width, height, |x, y| {
            *horizontal.get_pixel(x, y + rows.start as u32)
        });
    }
    let mut out = RgbImage::new(width, height);
    for (oy, i) in rows.enumerate() {
        let (ymin, k) = pil_weights(h, size.1, i);
        for x in 0..width {
            let mut acc = [round; 3];
            for (j, kk) in k.iter().enumerate() {
                let p = horizontal.get_pixel(x, (ymin + j) as u32);
                for ch in 0..3 {
                    acc[ch] += i64::from(p[ch]) * kk;
                }
            }
            out.put_pixel(x, oy as u32, image::Rgb(acc.map(clip8)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_rule_matches_transformers() {
        assert_eq!(resized_size(97, 61, 40), (63, 40));
        assert_eq!(resized_size(45, 83, 60), (60, 110));
        assert_eq!(resized_size(40, 40, 40), (40, 40));
        assert_eq!(resized_size(10000, 10, 224), (224_000, 224));
    }

    #[test]
    fn crop_rect_is_in_original_coordinates() {
        let img = DynamicImage::new_rgb8(200, 100);
        let p = preprocess(&img, &PreprocessConfig::openai(50));
        // 200×100 → 100×50, crop 50 at x = 25 → original x = 50, w = 100.
        assert_eq!(
            p.crop,
            CropRect {
                x: 50.0,
                y: 0.0,
                w: 100.0,
                h: 100.0
            }
        );
        assert_eq!(p.pixels.len(), 3 * 50 * 50);
    }

    #[test]
    fn normalises_with_mean_and_std() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, image::Rgb([255, 0, 128])));
        let c = PreprocessConfig::openai(8);
        let p = preprocess(&img, &c);
        let expect_r = (1.0 - c.mean[0]) / c.std[0];
        let expect_b = (128.0 / 255.0 - c.mean[2]) / c.std[2];
        assert!((p.pixels[0] - expect_r).abs() < 1e-6);
        assert!((p.pixels[2 * 64 + 5] - expect_b).abs() < 1e-6);
    }

    #[test]
    fn preprocessor_json_is_read() {
        let json = r#"{"crop_size": {"height": 60, "width": 60}, "size": {"shortest_edge": 64},
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "do_resize": true}"#;
        let c = PreprocessConfig::from_json(json, 60).unwrap();
        assert_eq!(
            (c.shortest_edge, c.crop, c.mean[0], c.std[0]),
            (64, 60, 0.5, 0.25)
        );
        let err = PreprocessConfig::from_json(r#"{"crop_size": 32}"#, 60).unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
    }

    #[test]
    fn bad_bytes_give_clear_errors() {
        let empty = decode_bytes(&[]).unwrap_err().to_string();
        assert!(empty.contains("empty"), "{empty}");
        let text = decode_bytes(b"hello, I am not an image")
            .unwrap_err()
            .to_string();
        assert!(text.contains("not an image"), "{text}");
    }
}
