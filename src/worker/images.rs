//! Images through the vision tower once: encodings cached by id within a byte budget, the least
//! recently used evicted first, and the display copies announced with each new image.

use std::sync::Arc;
use std::time::Instant;

use super::THUMBNAIL_SIDE;
use super::{no_model, views, Cached, Event, ImageInfo, ImageRef, Outbox, Preview, State};
use crate::engine::{elapsed_ms, ModelError};

/// Bytes of encoded images kept at once (about 160 ViT-B/16 images), the least recently used
/// evicted first.
const IMAGE_BUDGET: usize = 256 << 20;
/// Longest side of the display copy sent with `ImageReady`.
const PREVIEW_SIDE: u32 = 1024;
/// Encodes `image` unless cached; returns whether it was cached. Announces new images.
pub(super) fn ensure_encoded(
    state: &mut State,
    image: &ImageRef,
    out: &Outbox,
) -> Result<bool, ModelError> {
    let model = state.model.as_ref().ok_or_else(no_model)?;
    if state.cache.contains_key(&image.id) {
        state.order.retain(|i| *i != image.id);
        state.order.push_back(image.id);
        return Ok(true);
    }
    let start = Instant::now();
    let decoded = views::decode(&image.input)?;
    let encoded = model.encode_decoded(&decoded)?;
    tracing::debug!(image = image.id, "encoded in {:.1} ms", elapsed_ms(start));
    let preview = scaled_copy(&decoded.image, PREVIEW_SIDE);
    let thumbnail = scaled_copy(&decoded.image, THUMBNAIL_SIDE);
    out.send(Event::ImageReady(ImageInfo {
        id: image.id,
        preview: Arc::new(preview),
        thumbnail: Arc::new(thumbnail),
        original: encoded.original,
        crop: encoded.crop,
        grid: encoded.grid,
        encode_ms: elapsed_ms(start),
    }));
    state.cache_bytes += encoded.bytes();
    state.cache.insert(image.id, Cached { encoded });
    state.order.push_back(image.id);
    // The image just encoded stays, whatever its size.
    while state.cache_bytes > IMAGE_BUDGET && state.order.len() > 1 {
        if let Some(old) = state.order.front().copied() {
            state.forget_image(old);
        }
    }
    Ok(false)
}

/// The image as RGBA, scaled down to `side` on its longest side if it is larger.
fn scaled_copy(image: &image::DynamicImage, side: u32) -> Preview {
    let (w, h) = (image.width(), image.height());
    let small = if w.max(h) > side {
        image.resize(side, side, image::imageops::FilterType::Triangle)
    } else {
        image.clone()
    };
    let rgba = small.to_rgba8();
    Preview {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    }
}
