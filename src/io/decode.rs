//! Image files to pixels: any format the `image` crate reads, bounded sizes, EXIF rotation, and
//! whether the file held palette indices (which Pillow resizes nearest-neighbour).

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::Cursor;
use std::path::Path;

use crate::error::ModelError;

/// Largest accepted side of an image, in pixels.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count (about a 100-megapixel photo).
pub const MAX_PIXELS: u64 = 100_000_000;
/// The largest image file read (an uncompressed 100-megapixel RGBA image is 400 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// A decoded image and whether the file stored palette indices (Pillow's mode "P", which it
/// resizes nearest-neighbour).
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: DynamicImage,
    pub palette: bool,
}

impl From<DynamicImage> for Decoded {
    fn from(image: DynamicImage) -> Self {
        Self {
            image,
            palette: false,
        }
    }
}

/// Decodes an image file: any format the `image` crate reads, EXIF rotation applied, first frame
/// of an animation, bounded size.
pub fn decode_file(path: &Path) -> Result<Decoded, ModelError> {
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
pub fn decode_bytes(bytes: &[u8]) -> Result<Decoded, ModelError> {
    if bytes.is_empty() {
        return Err(ModelError::Image("the file is empty (0 bytes)".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ModelError::Decode {
            what: "cannot read the file".into(),
            source: e.into(),
        })?;
    let palette = match reader.format() {
        None => {
            return Err(ModelError::Image(
                "not an image this program can read (unknown format)".into(),
            ))
        }
        // IHDR's colour type (byte 25) 3 is indexed colour; GIF frames are always indexed.
        Some(ImageFormat::Png) => bytes.get(25) == Some(&3),
        Some(ImageFormat::Gif) => true,
        Some(_) => false,
    };
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
    Ok(Decoded { image, palette })
}
