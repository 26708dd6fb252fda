//! Numeric parity with Hugging Face `transformers` on randomly initialised CLIP models
//! (fixtures made by tools/make_parity_fixtures.py; no Python needed here).

mod common;

use common::max_diff;

use candle_core::{Device, Tensor};
use clipscope::engine::{preprocess, LoadedModel, Preprocessed};
use std::collections::HashMap;
use std::path::PathBuf;

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    common::parity("")
}

struct Reference {
    tensors: HashMap<String, Tensor>,
    json: serde_json::Value,
}

impl Reference {
    fn load(model: &str) -> Self {
        let dir = fixtures().join(model);
        let tensors =
            candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
                .unwrap();
        let json =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        Self { tensors, json }
    }

    fn values(&self, name: &str) -> Vec<f32> {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture has no tensor {name}"))
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn prompts(&self) -> Vec<String> {
        self.json["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap().to_string())
            .collect()
    }
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn check_model(name: &str) {
    let dir = fixtures().join(name);
    let model = LoadedModel::from_folder(&dir, name).unwrap();
    let reference = Reference::load(name);
    let prompts = reference.prompts();

    // Tokens: ids, vocabulary strings and truncation flags equal the reference tokenizer's.
    for (i, p) in reference.json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let t = model.tokenize(&prompts[i]).unwrap();
        let ids: Vec<u32> = p["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(t.ids, ids, "{name}: ids of {:?}", prompts[i]);
        let tokens: Vec<String> = p["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(t.tokens, tokens, "{name}: tokens of {:?}", prompts[i]);
        assert_eq!(
            t.truncated,
            p["truncated"].as_bool().unwrap(),
            "{name}: truncated flag of {:?}",
            prompts[i]
        );
    }

    // Image tokens from the reference's own pixel values: the model alone is compared.
    let side = model.config().vision.image_size;
    let pixels = reference.values("pixel_values.wide");
    let pre = Preprocessed {
        pixels,
        side,
        crop: preprocess::CropRect {
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        },
        original: (1, 1),
    };
    let image = model.encode_pixels(&pre).unwrap();
    let d = max_diff(&to_vec(&image.tokens), &reference.values("image_tokens"));
    assert!(d < TOL, "{name}: image tokens differ by {d}");
    let g = model.config().vision.grid_side();
    assert_eq!(
        image.tokens.dims(),
        &[1 + g * g, model.config().projection_dim]
    );

    // Text tokens (batched and padded here, one by one in the reference), DCSMs and scores.
    let encoded = model.encode_prompts(&prompts).unwrap();
    for (i, t) in encoded.tokens.iter().enumerate() {
        let d = max_diff(&to_vec(t), &reference.values(&format!("text_tokens.{i}")));
        assert!(d < TOL, "{name}: text tokens of prompt {i} differ by {d}");
    }
    let scores = model.score(&image, &encoded).unwrap();
    let cosines = reference.values("clip_cosine");
    let probs = reference.values("clip_prob");
    for (i, s) in scores.iter().enumerate() {
        let d = max_diff(&s.dcsm.data, &reference.values(&format!("dcsm.{i}")));
        assert!(d < TOL, "{name}: DCSM of prompt {i} differs by {d}");
        assert_eq!(
            (s.dcsm.rows, s.dcsm.cols),
            (1 + g * g, s.tokenized.ids.len())
        );
        assert!(
            (s.clip_cosine - cosines[i]).abs() < TOL,
            "{name}: cosine {i}: {} vs {}",
            s.clip_cosine,
            cosines[i]
        );
        assert!(
            (s.clip_prob - probs[i]).abs() < TOL,
            "{name}: prob {i}: {} vs {}",
            s.clip_prob,
            probs[i]
        );
    }
    let scale = reference.values("logit_scale")[0];
    assert!((model.logit_scale_exp().unwrap() - scale.exp()).abs() < 1e-3);
}

#[test]
fn quick_gelu_model_matches_transformers() {
    check_model("tiny_quick_gelu");
}

#[test]
fn gelu_f16_model_matches_transformers() {
    check_model("tiny_gelu");
}

fn image_path(name: &str) -> PathBuf {
    fixtures().join("images").join(name)
}

/// Preprocessing against `CLIPImageProcessor` (Pillow backend). Our resize follows Pillow's
/// fixed-point bicubic, so the result is exact up to float rounding in the normalisation.
fn check_preprocess(model_name: &str, image: &str) {
    let model = LoadedModel::from_folder(&fixtures().join(model_name), model_name).unwrap();
    let reference = Reference::load(model_name);
    let stem = image.trim_end_matches(".png");
    let expected = reference.values(&format!("pixel_values.{stem}"));
    let decoded = preprocess::decode_file(&image_path(image)).unwrap();
    let got = model.preprocess_decoded(&decoded);
    let d = max_diff(&got.pixels, &expected);
    assert!(d < 1e-6, "{model_name}/{image}: pixels differ by {d}");
    let info = &reference.json["images"][image];
    let crop: Vec<f32> = info["crop"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let resized: Vec<f32> = info["resized"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let (w, h) = got.original;
    let (sx, sy) = (w as f32 / resized[0], h as f32 / resized[1]);
    let expect = [crop[0] * sx, crop[1] * sy, crop[2] * sx, crop[3] * sy];
    let c = got.crop;
    assert!(
        max_diff(&[c.x, c.y, c.w, c.h], &expect) < 1e-3,
        "{image}: crop {c:?} vs {expect:?}"
    );
}

#[test]
fn preprocessing_matches_clip_image_processor() {
    for (model, exact) in [
        ("tiny_quick_gelu", "exact40.png"),
        ("tiny_gelu", "exact60.png"),
    ] {
        for image in ["wide.png", "tall.png", exact] {
            check_preprocess(model, image);
        }
    }
}
