//! Image decoding and CLIP preprocessing as `CLIPImageProcessor` or OpenAI's torchvision
//! transform does it, keeping the crop rectangle.

use image::DynamicImage;
use serde::{Deserialize, Serialize};

use super::pillow::{self, Plane};
use super::pipeline::ImageConvention;
use crate::error::ModelError;

pub use super::decode::{decode_bytes, decode_file, Decoded, MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE};

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
    /// Whose pipeline around the resize this follows.
    pub convention: ImageConvention,
    /// Resize straight to `crop × crop`, the aspect ratio not kept and nothing cropped
    /// (`SiglipImageProcessor`); `shortest_edge` is then unused.
    pub squash: bool,
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
            convention: ImageConvention::Transformers,
            squash: false,
        }
    }

    /// SigLIP's defaults: the whole image resized to `image_size` square, mean and std 0.5.
    pub fn siglip(image_size: usize) -> Self {
        Self {
            mean: [0.5; 3],
            std: [0.5; 3],
            squash: true,
            ..Self::openai(image_size)
        }
    }

    /// A SigLIP `preprocessor_config.json`: `size` {height, width} (square, the model's size),
    /// `image_mean`, `image_std`.
    pub fn siglip_from_json(json: &str, image_size: usize) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        struct Size {
            height: u32,
            width: u32,
        }
        #[derive(Deserialize)]
        struct Raw {
            size: Option<Size>,
            image_mean: Option<[f32; 3]>,
            image_std: Option<[f32; 3]>,
            do_center_crop: Option<bool>,
            resample: Option<u32>,
        }
        let bad = |m: String| ModelError::Config(format!("preprocessor_config.json: {m}"));
        let raw: Raw = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let mut config = Self::siglip(image_size);
        if let Some(Size { height, width }) = raw.size {
            if height != width || height as usize != image_size {
                return Err(bad(format!(
                    "SigLIP resizes to {width}×{height}, not the model's {image_size} square"
                )));
            }
        }
        if raw.do_center_crop == Some(true) {
            return Err(bad("a centre crop is not SigLIP's preprocessing".into()));
        }
        if let Some(r) = raw.resample.filter(|r| *r != 3) {
            // Only Pillow's bicubic (3) is implemented exactly; README says so.
            tracing::warn!(
                "preprocessor_config.json asks for resample {r}; clipscope resizes bicubically, \
                 so pixels differ slightly from transformers'"
            );
        }
        config.mean = raw.image_mean.unwrap_or(config.mean);
        config.std = raw.image_std.unwrap_or(config.std);
        if config.std.iter().any(|s| *s <= 0.0) {
            return Err(bad("image_std must be positive".into()));
        }
        Ok(config)
    }

    /// The same sizes and statistics with another convention.
    pub fn with_convention(self, convention: ImageConvention) -> Self {
        Self { convention, ..self }
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

/// Resize (bicubic), centre crop, rescale and normalise, as the model's convention does it with
/// Pillow. Only the cropped part of the resized image is computed, bit-exact with Pillow's
/// resampling, so a 10000×10 image costs no 224000×224 intermediate.
pub fn preprocess(image: &DynamicImage, config: &PreprocessConfig) -> Preprocessed {
    preprocess_image(image, false, config)
}

/// [`preprocess`] of a decoded file, which knows whether it held palette indices.
pub fn preprocess_decoded(source: &Decoded, config: &PreprocessConfig) -> Preprocessed {
    preprocess_image(&source.image, source.palette, config)
}

fn preprocess_image(
    image: &DynamicImage,
    palette: bool,
    config: &PreprocessConfig,
) -> Preprocessed {
    let (w, h) = (image.width(), image.height());
    let c = config.crop;
    let (rw, rh) = if config.squash {
        (c, c)
    } else {
        resized_size(w, h, config.shortest_edge)
    };
    let openai = config.convention == ImageConvention::Openai;
    // transformers: (size - crop) // 2; torchvision: int(round((size - crop) / 2)), half to even.
    let offset = |size: u32| {
        let d = i64::from(size) - i64::from(c);
        let floor = d.div_euclid(2);
        if openai && d > 0 && d % 2 == 1 {
            floor + floor % 2
        } else {
            floor
        }
    };
    let (left, top) = (offset(rw), offset(rh));
    let cols = visible(left, c, rw);
    let rows = visible(top, c, rh);
    let view = resized_window(image, palette, openai, (rw, rh), cols.clone(), rows.clone());
    let side = c as usize;
    let mut pixels = vec![0.0f32; 3 * side * side];
    for y in 0..side {
        for x in 0..side {
            let (sx, sy) = (left + x as i64, top + y as i64);
            let inside = cols.contains(&sx) && rows.contains(&sy);
            let px = inside.then(|| view.pixel((sx - cols.start) as u32, (sy - rows.start) as u32));
            for ch in 0..3 {
                let v = px.map_or(0.0, |p| unit(p[ch], openai));
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

/// An 8-bit value rescaled to 0..1: torchvision's ToTensor divides in single precision;
/// transformers rescales in double (both normalise in single afterwards).
fn unit(value: u8, openai: bool) -> f32 {
    if openai {
        f32::from(value) / 255.0
    } else {
        (f64::from(value) * (1.0 / 255.0)) as f32
    }
}

/// The whole image resized so its shortest side is `config.shortest_edge` (no crop), rescaled and
/// normalised as [`preprocess`] does: CHW floats and the resized (width, height). Tiled maps
/// slide their windows over it.
pub fn resized_full(source: &Decoded, config: &PreprocessConfig) -> (Vec<f32>, (u32, u32)) {
    let image = &source.image;
    let (rw, rh) = resized_size(image.width(), image.height(), config.shortest_edge);
    let openai = config.convention == ImageConvention::Openai;
    let view = resized_window(
        image,
        source.palette,
        openai,
        (rw, rh),
        0..i64::from(rw),
        0..i64::from(rh),
    );
    let plane = (rw * rh) as usize;
    let mut pixels = vec![0.0f32; 3 * plane];
    for (i, px) in view.data.chunks_exact(view.channels).enumerate() {
        for ch in 0..3 {
            let v = unit(px[ch], openai);
            pixels[ch * plane + i] = (v - config.mean[ch]) / config.std[ch];
        }
    }
    (pixels, (rw, rh))
}

/// The window of the image resized to `size`, with at least the RGB channels first. transformers
/// converts to RGB (alpha composited onto white) and then resizes; Pillow under torchvision
/// resizes the file's own mode (palette: nearest; with alpha: premultiplied) and drops alpha
/// after.
fn resized_window(
    image: &DynamicImage,
    palette: bool,
    openai: bool,
    size: (u32, u32),
    cols: std::ops::Range<i64>,
    rows: std::ops::Range<i64>,
) -> Plane {
    let has_alpha = image.color().has_alpha();
    let alpha = openai && !palette && has_alpha;
    let (width, height) = (image.width(), image.height());
    let rgba = || Plane {
        width,
        height,
        channels: 4,
        data: image.to_rgba8().into_raw(),
    };
    let mut plane = if alpha {
        rgba()
    } else if !openai && has_alpha {
        pillow::composite_on_white(&rgba())
    } else {
        Plane {
            width,
            height,
            channels: 3,
            data: image.to_rgb8().into_raw(),
        }
    };
    if openai && size == (width, height) {
        // Pillow returns a copy of an image already at the size.
        return pillow::bicubic_window(&plane, size, cols, rows);
    }
    if openai && palette {
        return pillow::nearest_window(&plane, size, cols, rows);
    }
    if alpha {
        pillow::premultiply(&mut plane);
        let mut out = pillow::bicubic_window(&plane, size, cols, rows);
        pillow::unpremultiply(&mut out);
        return out;
    }
    pillow::bicubic_window(&plane, size, cols, rows)
}

/// The indices of `start..start + len` that fall inside `0..size`.
fn visible(start: i64, len: u32, size: u32) -> std::ops::Range<i64> {
    start.max(0)..(start + i64::from(len)).min(i64::from(size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

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
    fn torchvision_rounds_the_crop_offset_half_to_even() {
        let img = DynamicImage::new_rgb8(57, 50);
        let hf = PreprocessConfig::openai(50);
        let openai = hf.clone().with_convention(ImageConvention::Openai);
        // Overhang 7: transformers floors 3.5 to 3, torchvision rounds it to 4.
        assert_eq!(preprocess(&img, &hf).crop.x, 3.0);
        assert_eq!(preprocess(&img, &openai).crop.x, 4.0);
        // Overhang 5: 2.5 rounds to 2 either way.
        let img = DynamicImage::new_rgb8(55, 50);
        assert_eq!(preprocess(&img, &openai).crop.x, 2.0);
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
