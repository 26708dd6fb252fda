//! Fidelity to each reference's own pipeline, end to end (fixtures from tools/make_fidelity_fixtures.py):
//! torchvision's and transformers' pixels, OpenAI's tokenizer with the real ftfy, and a SmartCLIP
//! checkpoint loaded as the official loader loads it (fp16 rounding), image file to scores.

mod common;

use candle_core::Tensor;
use clipscope::engine::{
    ClipTokenizer, ImageConvention, LoadedModel, PreprocessConfig, TextConvention,
};
use clipscope::io::preprocess::{decode_file, preprocess_decoded};
use common::{flat, load_f32, max_diff};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    common::fixture("fidelity", name)
}

fn tensors(name: &str) -> HashMap<String, Tensor> {
    load_f32(&fixture(name))
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Our pixels of an image file under a convention, against the reference tensor `key`.
fn pixel_diff(file: &str, convention: ImageConvention, key: &str) -> f32 {
    let want = &tensors("pixels.safetensors")[key];
    let config = PreprocessConfig::openai(64).with_convention(convention);
    let got = preprocess_decoded(&decode_file(&fixture(file)).unwrap(), &config);
    max_diff(&got.pixels, &flat(want))
}

const PNGS: [&str; 7] = [
    "odd",
    "odd_tall",
    "rgba",
    "palette",
    "palette_alpha",
    "grey",
    "grey_alpha",
];

#[test]
fn pixels_match_torchvision_and_transformers_on_every_kind_of_png() {
    for stem in PNGS {
        let file = format!("images/{stem}.png");
        let openai = pixel_diff(&file, ImageConvention::Openai, &format!("{stem}.openai"));
        assert!(
            openai < 1e-4,
            "{stem}: torchvision pipeline differs by {openai}"
        );
        let hf = pixel_diff(
            &file,
            ImageConvention::Transformers,
            &format!("{stem}.transformers_pil"),
        );
        assert!(hf < 1e-4, "{stem}: transformers' processor differs by {hf}");
        // The two conventions really differ on these images (crop offset, alpha, palette).
        let cross = pixel_diff(
            &file,
            ImageConvention::Transformers,
            &format!("{stem}.openai"),
        );
        if stem != "grey" {
            assert!(
                cross > 0.1,
                "{stem}: the conventions should differ ({cross})"
            );
        }
    }
}

/// JPEG decoders differ slightly (the `image` crate vs Pillow's libjpeg); measured for the README.
#[test]
fn jpeg_decoding_and_exif_rotation_differences_are_small_and_large() {
    let jpeg = pixel_diff("images/photo.jpg", ImageConvention::Openai, "photo.openai");
    println!("photo.jpg: max |Δ| pixels vs Pillow {jpeg:.4}");
    assert!(jpeg < 0.1, "JPEG decoding differs by {jpeg}");
    // What that does to the maps of a (random) model: its DCSM cosines, ours vs Pillow's pixels.
    let model = LoadedModel::from_folder(&fixture("smartclip/converted"), "fidelity").unwrap();
    let ours = model.preprocess_decoded(&decode_file(&fixture("images/photo.jpg")).unwrap());
    let pillow = clipscope::engine::Preprocessed {
        pixels: flat(&tensors("pixels.safetensors")["photo.openai"]),
        ..ours.clone()
    };
    let prompts = model
        .encode_prompts(&["a red circle".to_string(), "a photo of a dog".to_string()])
        .unwrap();
    let maps = |p: &clipscope::engine::Preprocessed| -> Vec<f32> {
        let image = model.encode_pixels(p).unwrap();
        model
            .score(&image, &prompts)
            .unwrap()
            .iter()
            .flat_map(|s| s.dcsm.to_rows().concat())
            .collect()
    };
    let map_diff = max_diff(&maps(&ours), &maps(&pillow));
    println!("photo.jpg: max |Δ| DCSM cosines vs Pillow's pixels {map_diff:.2e}");
    assert!(map_diff < 0.05, "{map_diff}");
    // We apply EXIF rotation; the references ignore it.
    let rotated = pixel_diff(
        "images/rotated.jpg",
        ImageConvention::Openai,
        "rotated.openai_exif",
    );
    let ignored = pixel_diff(
        "images/rotated.jpg",
        ImageConvention::Openai,
        "rotated.openai",
    );
    println!("rotated.jpg: vs Pillow after exif_transpose {rotated:.4}, vs Pillow as opened {ignored:.4}");
    assert!(rotated < 0.1, "{rotated}");
    assert!(ignored > 1.0, "{ignored}");
}

#[test]
fn openai_clean_up_gives_the_simple_tokenizers_ids() {
    let text = json("text.json");
    let plain = ClipTokenizer::bundled().unwrap();
    let openai = ClipTokenizer::bundled()
        .unwrap()
        .with_clean(TextConvention::Openai);
    let mut changed = 0;
    for p in text["prompts"].as_array().unwrap() {
        let prompt = p["prompt"].as_str().unwrap();
        let ids = |key: &str| -> Vec<u32> {
            p[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        };
        let ours = openai.encode(prompt, 100_000).unwrap();
        assert_eq!(
            ours.ids,
            ids("openai_ids"),
            "{prompt:?} (OpenAI's tokenizer)"
        );
        let fast = plain.encode(prompt, 100_000).unwrap();
        assert_eq!(fast.ids, ids("hf_ids"), "{prompt:?} (the fast tokenizer)");
        changed += usize::from(ours.ids != fast.ids);
    }
    assert!(changed >= 8, "only {changed} prompts tokenise differently");
}

#[test]
fn a_smartclip_checkpoint_scores_as_the_official_pipeline_from_image_files() {
    let model = LoadedModel::from_folder(&fixture("smartclip/converted"), "fidelity").unwrap();
    assert_eq!(model.pipeline().image, ImageConvention::Openai);
    assert_eq!(model.pipeline().text, TextConvention::Openai);
    let reference = tensors("smartclip/reference.safetensors");
    let meta = json("smartclip/reference.json");
    let prompts: Vec<String> = meta["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let encoded_prompts = model.encode_prompts(&prompts).unwrap();
    let rows = |key: &str| -> Vec<Vec<f32>> { reference[key].to_vec2().unwrap() };
    let (cosines, smart, hard) = (rows("clip_cosine"), rows("smart_score"), rows("mask_hard"));
    let full = rows("smart_score_full");
    let (mut worst, mut rounding_shows) = (0f32, false);
    for (i, file) in meta["images"].as_array().unwrap().iter().enumerate() {
        let decoded = decode_file(&fixture(file.as_str().unwrap())).unwrap();
        let pixels = model.preprocess_decoded(&decoded);
        let want = flat(&reference["pixel_values"].get(i).unwrap());
        assert!(max_diff(&pixels.pixels, &want) < 1e-4, "{file}: pixels");
        let image = model.encode_pixels(&pixels).unwrap();
        let scores = model.score(&image, &encoded_prompts).unwrap();
        for (k, s) in scores.iter().enumerate() {
            let m = s.smartclip.as_ref().unwrap();
            let kept: Vec<f32> = m
                .mask
                .iter()
                .map(|v| f32::from(u8::from(*v >= m.threshold)))
                .collect();
            assert_eq!(kept, hard[k], "prompt {k}: hard mask");
            worst = worst
                .max((s.clip_cosine - cosines[i][k]).abs())
                .max((m.score - smart[i][k]).abs());
            rounding_shows |= (smart[i][k] - full[i][k]).abs() > 1e-3;
        }
    }
    println!("SmartCLIP end to end: max |Δ| cosine and score {worst:.2e}");
    assert!(
        worst < 1e-4,
        "scores differ from the official pipeline by {worst}"
    );
    assert!(rounding_shows, "the fixture should show the fp16 rounding");
}
