//! Display maps of another view (map source, surgery, resolution, tiles) for a scored image: the
//! vision states of the last image asked for are kept, so switching the source re-runs at most
//! the last block.

use super::{ImageInput, ImageRef};
use crate::engine::{
    preprocess, Decoded, DenseImage, EncodedImage, EncodedPrompts, LoadedModel, MapView,
    ModelError, PromptScore, ViewMaps,
};

/// The states behind the last view asked for.
pub(super) struct DenseEntry {
    pub image_id: u64,
    pub dense: DenseImage,
}

/// Decodes a job's image (file, bytes or pixels).
pub(super) fn decode(input: &ImageInput) -> Result<Decoded, ModelError> {
    Ok(match input {
        ImageInput::Path(p) => preprocess::decode_file(p)?,
        ImageInput::Bytes(b) => preprocess::decode_bytes(b)?,
        ImageInput::Rgba {
            width,
            height,
            pixels,
        } => {
            let buffer = image::RgbaImage::from_raw(*width, *height, pixels.as_ref().clone())
                .ok_or_else(|| ModelError::Image("pixel buffer does not match its size".into()))?;
            Decoded::from(image::DynamicImage::ImageRgba8(buffer))
        }
    })
}

/// The grid and region of the plain maps (the centre crop at the model's size).
pub(super) fn plain(encoded: &EncodedImage) -> ((usize, usize), crate::engine::CropRect) {
    (encoded.grid, encoded.crop)
}

/// Replaces the scores' maps with `view`'s, computing the image states unless `cache` holds
/// them; returns the maps' grid and region.
pub(super) fn apply(
    model: &LoadedModel,
    cache: &mut Option<DenseEntry>,
    image: &ImageRef,
    view: &MapView,
    prompts: &EncodedPrompts,
    scores: &mut [PromptScore],
) -> Result<ViewMaps, ModelError> {
    model.check_source(view.source)?;
    let fits = cache.as_ref().is_some_and(|c| {
        c.image_id == image.id
            && c.dense.resolution == view.resolution
            && c.dense.layout.tiles == view.tiles
    });
    if !fits {
        *cache = None; // the old states go before the new ones are made
        let decoded = decode(&image.input)?;
        let dense = model.dense_image(&decoded, view.resolution, view.tiles)?;
        tracing::debug!(
            image = image.id,
            windows = dense.layout.offsets.len(),
            mb = dense.bytes() / (1 << 20),
            "view states for {}",
            view.label()
        );
        *cache = Some(DenseEntry {
            image_id: image.id,
            dense,
        });
    }
    let entry = cache
        .as_ref()
        .ok_or_else(|| ModelError::Config("internal: no view states".into()))?;
    let maps = model.view_maps(&entry.dense, view, prompts)?;
    for (s, m) in scores.iter_mut().zip(&maps.maps) {
        s.dcsm = m.clone();
    }
    Ok(maps)
}
