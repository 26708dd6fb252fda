//! `clipscope bench`'s map-view cases: the raw and ClearCLIP sources from the hidden states,
//! an encode at 448 px, and tiled maps over a 1024×768 image (tools/bench_pytorch.py times the
//! same work in PyTorch).

use anyhow::Result;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

use super::measure::{time, Row};
use crate::engine::{EncodedPrompts, LoadedModel, MapSource, MapView};

pub(super) fn rows(
    name: &str,
    model: &LoadedModel,
    pixels: &Tensor,
    prompts: &EncodedPrompts,
    warmup: usize,
    runs: usize,
) -> Result<Vec<Row>> {
    let clip = model.clip()?;
    let mut rows = Vec::new();
    for (measure, source) in [
        ("encode_raw_states", MapSource::Raw),
        ("encode_clearclip", MapSource::ClearClip),
    ] {
        rows.push(time(name, measure, warmup, runs, || {
            let states = clip.vision_states(pixels)?;
            Ok(clip.source_tokens(&states, source)?)
        })?);
    }
    let big = Tensor::randn(0f32, 1.0, (1, 3, 448, 448), &Device::Cpu)?;
    rows.push(time(name, "image_encode_448", warmup, runs, || {
        Ok(clip.image_tokens(&big)?)
    })?);
    // A decoded 1024×768 photo-sized image of noise, from resize to combined maps.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let noise = image::RgbImage::from_fn(1024, 768, |_, _| image::Rgb(rng.random::<[u8; 3]>()));
    let decoded = image::DynamicImage::ImageRgb8(noise).into();
    let view = MapView {
        tiles: true,
        ..MapView::default()
    };
    rows.push(time(
        name,
        "tiles_1024x768",
        warmup.min(1),
        runs.div_ceil(2),
        || {
            let dense = model.dense_image(&decoded, None, true)?;
            Ok(model.view_maps(&dense, &view, prompts)?)
        },
    )?);
    Ok(rows)
}
