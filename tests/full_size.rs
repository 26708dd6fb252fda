//! The released configurations (ViT-B/32, B/16, L/14) build and run with the right shapes.

use candle_core::{Device, Tensor};
use clipscope::engine::{clip, ClipConfig};

fn check(config: ClipConfig, grid: usize) {
    let model = clip::zeros(&config).unwrap();
    let s = config.vision.image_size;
    let pixels = Tensor::zeros((1, 3, s, s), candle_core::DType::F32, &Device::Cpu).unwrap();
    let image = model.image_tokens(&pixels).unwrap();
    assert_eq!(image.dims(), &[1, 1 + grid * grid, config.projection_dim]);
    let ids = Tensor::new(&[[49406u32, 320, 736, 3999, 49407]], &Device::Cpu).unwrap();
    let text = model.text_tokens(&ids).unwrap();
    assert_eq!(text.dims(), &[1, 5, config.projection_dim]);
}

#[test]
fn vit_b32_shapes() {
    check(ClipConfig::vit_b32(), 7);
}

#[test]
fn vit_b16_shapes() {
    check(ClipConfig::vit_b16(), 14);
}

#[test]
fn vit_l14_shapes() {
    check(ClipConfig::vit_l14(), 16);
}
