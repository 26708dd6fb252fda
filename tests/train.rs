//! A short training run on a tiny configuration lowers the loss on held-back scenes.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use clipscope::model::clip::Clip;
use clipscope::model::config::ClipConfig;
use clipscope::train::clip::{default_config, train, validation_loss, Options};

fn tiny() -> ClipConfig {
    let mut c = default_config();
    c.vision.image_size = 64;
    c.vision.patch_size = 16;
    for (hidden, layers) in [
        (&mut c.vision.hidden_size, &mut c.vision.num_hidden_layers),
        (&mut c.text.hidden_size, &mut c.text.num_hidden_layers),
    ] {
        *hidden = 32;
        *layers = 1;
    }
    c.vision.intermediate_size = 64;
    c.text.intermediate_size = 64;
    c.vision.num_attention_heads = 2;
    c.text.num_attention_heads = 2;
    c.projection_dim = 32;
    c
}

#[test]
fn a_short_run_lowers_the_validation_loss() {
    let config = tiny();
    let untrained = Clip::new(
        &config,
        true,
        VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let before = validation_loss(&untrained, &config, 5, 32).unwrap();
    let options = Options {
        config: config.clone(),
        steps: 60,
        batch: 32,
        lr: 3e-3,
        seed: 3,
        token_weight: 1.0,
        ground_weight: 0.0,
        warmup: 5,
        init: None,
    };
    let mut losses = Vec::new();
    let (_, model) = train(&options, |r, _| losses.push(r.loss)).unwrap();
    let after = validation_loss(&model, &config, 5, 32).unwrap();
    assert_eq!(losses.len(), 60);
    assert!(after < before - 0.3, "validation loss {before} → {after}");
}
