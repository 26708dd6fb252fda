//! The inference layout (weights read from the file into panels, products on them: the streamed
//! kernel for few rows, gemm per panel for more) computes what plain candle matmuls on the stored
//! (out, in) weights compute, on a model whose widths make whole panels.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use clipscope::engine::{Clip, LoadedModel};
use common::max_diff;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn panels_compute_what_the_stored_weights_do() {
    // The shipped model: vision 256 wide, text 128, projection 128, all whole panels.
    let dir = std::path::Path::new("assets/default-model");
    let loaded = LoadedModel::from_folder(dir, "default").unwrap();
    let config = loaded.config().clone();
    assert_eq!(config.vision.hidden_size % 128, 0);
    assert_eq!(config.text.hidden_size % 128, 0);
    // The training form reads the stored weights as they are, through candle's own loader.
    let file = dir.join("model.safetensors");
    // SAFETY: the file is part of the source tree and not modified while mapped.
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[file], DType::F32, &Device::Cpu) }.unwrap();
    let plain = Clip::new(&config, true, vb).unwrap();
    let ours = loaded.clip().unwrap();

    let s = config.vision.image_size;
    let pixels = Tensor::randn(0f32, 1.0, (2, 3, s, s), &Device::Cpu).unwrap();
    let a = ours.image_tokens(&pixels).unwrap();
    let b = plain.image_tokens(&pixels).unwrap();
    assert_eq!(a.dims(), b.dims());
    let d = max_diff(&values(&a), &values(&b));
    assert!(d < 1e-4, "image tokens differ by {d}");

    // One prompt (few rows: the streamed kernel where chosen) and 24 (gemm per panel).
    for n in [1usize, 24] {
        let ids: Vec<u32> = (0..n * 8).map(|i| 320 + (i as u32 * 37) % 4000).collect();
        let ids = Tensor::from_vec(ids, (n, 8), &Device::Cpu).unwrap();
        let a = ours.text_tokens(&ids).unwrap();
        let b = plain.text_tokens(&ids).unwrap();
        let d = max_diff(&values(&a), &values(&b));
        assert!(d < 1e-4, "{n} prompts: text tokens differ by {d}");
    }
}
