//! The released configurations (ViT-B/32, B/16, L/14; SigLIP and SigLIP 2 base) build and run with
//! the right shapes.

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

#[test]
fn vit_l14_336_shapes() {
    // openai-l14-336: L/14 at 336 px, 24×24 patches (577 position embeddings).
    let mut config = ClipConfig::vit_l14();
    config.vision.image_size = 336;
    check(config, 24);
}

/// A SigLIP `SiglipModel` on zero weights at a preset's real sizes: patch tokens (no CLS row),
/// pooled image embedding, every text position and the pooled text embedding.
fn check_siglip(config_json: &str, grid: usize, width: usize) {
    use clipscope::clip::siglip::{Siglip, SiglipConfig};
    let config = SiglipConfig::from_json(config_json).unwrap();
    let vb = candle_nn::VarBuilder::zeros(candle_core::DType::F32, &Device::Cpu);
    let model = Siglip::new(&config, vb).unwrap();
    let s = config.sizes.vision.image_size;
    let pixels = Tensor::zeros((1, 3, s, s), candle_core::DType::F32, &Device::Cpu).unwrap();
    let image = model.image(&pixels).unwrap();
    assert_eq!(image.dense.dims(), &[1, grid * grid, width]);
    assert_eq!(image.pooled.dims(), &[1, width]);
    let context = config.sizes.text.max_position_embeddings;
    assert_eq!(context, 64);
    let ids = Tensor::zeros((2, context), candle_core::DType::U32, &Device::Cpu).unwrap();
    assert_eq!(
        model.text_tokens(&ids).unwrap().dims(),
        &[2, context, width]
    );
    assert!(model
        .image(&Tensor::zeros((1, 3, 2 * s, 2 * s), candle_core::DType::F32, &Device::Cpu).unwrap())
        .is_err());
}

#[test]
fn siglip_base_patch16_224_shapes() {
    // google/siglip-base-patch16-224's config.json names little: transformers' defaults hold.
    check_siglip(
        r#"{"model_type": "siglip", "text_config": {"model_type": "siglip_text_model"},
            "vision_config": {"model_type": "siglip_vision_model", "patch_size": 16}}"#,
        14,
        768,
    );
}

#[test]
fn siglip2_base_patch16_224_shapes() {
    // google/siglip2-base-patch16-224: SigLIP's towers with Gemma's 256,000-token vocabulary.
    check_siglip(
        r#"{"model_type": "siglip", "text_config": {"model_type": "siglip_text_model",
            "vocab_size": 256000}, "vision_config": {"model_type": "siglip_vision_model",
            "patch_size": 16, "image_size": 224}}"#,
        14,
        768,
    );
}
