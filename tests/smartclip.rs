//! SmartCLIP against our PyTorch re-implementation (tools/smartclip_reference.py): a converted,
//! checkpoint-shaped random model (Long-CLIP text, OpenAI-named mask net), masks, scores, losses.

mod common;

use common::max_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use clipscope::clip::l2_normalize;
use clipscope::engine::{preprocess::CropRect, EncodedImage, LoadedModel};
use clipscope::smartclip::{self, SmartConfig};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    common::fixture("smartclip", name)
}

fn reference() -> (HashMap<String, Tensor>, serde_json::Value) {
    let tensors = candle_core::safetensors::load(fixture("reference.safetensors"), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.to_dtype(DType::F32).unwrap()))
        .collect();
    let json =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap();
    (tensors, json)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn prompts(json: &serde_json::Value) -> Vec<String> {
    json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// The image as `score` needs it, from the fixture's pixel tensor.
fn encoded(model: &LoadedModel, pixels: &Tensor, i: usize) -> EncodedImage {
    let tokens = model
        .clip()
        .unwrap()
        .image_tokens(&pixels.narrow(0, i, 1).unwrap())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let normalized = l2_normalize(&tokens).unwrap();
    EncodedImage {
        pooled: tokens.narrow(0, 0, 1).unwrap(),
        cls_row: true,
        tokens,
        normalized,
        grid: model.grid(),
        crop: CropRect {
            x: 0.0,
            y: 0.0,
            w: 64.0,
            h: 64.0,
        },
        original: (64, 64),
    }
}

#[test]
fn the_converted_checkpoint_matches_pytorch() {
    let (r, json) = reference();
    let model = LoadedModel::from_folder(&fixture("converted"), "smartclip-tiny").unwrap();
    let net = model
        .smartclip()
        .expect("the converted folder has a mask network");
    assert_eq!(model.config().text.max_position_embeddings, 248);
    let prompts = prompts(&json);

    // Long-CLIP ids: SOS … EOS, then zeros to 248.
    let tokenized: Vec<_> = prompts.iter().map(|p| model.tokenize(p).unwrap()).collect();
    let ids = clipscope::io::tokenizer::pad_ids(&tokenized, 0, 248, &Device::Cpu).unwrap();
    let ids_f: Vec<f32> = flat(&ids.to_dtype(DType::F32).unwrap());
    assert_eq!(ids_f, flat(&r["input_ids"]), "token ids");

    let hidden = model.clip().unwrap().text_hidden(&ids).unwrap();
    let d = max_diff(&flat(&hidden), &flat(&r["text_ln_final"]));
    assert!(d < 1e-4, "ln_final of all 248 positions: {d}");

    let smart =
        clipscope::smartclip::encode_prompts(net, model.clip().unwrap(), &tokenized, 64).unwrap();
    let d = max_diff(&flat(&smart.logits), &flat(&r["mask_logits"]));
    assert!(d < 1e-4, "mask logits: {d}");
    let d = max_diff(&flat(&smart.texts), &flat(&r["text_embeds"]));
    assert!(d < 1e-4, "text embeddings: {d}");

    let pixels = &r["pixel_values"];
    let image_embeds = model
        .clip()
        .unwrap()
        .image_tokens(pixels)
        .unwrap()
        .narrow(1, 0, 1)
        .unwrap();
    let d = max_diff(&flat(&image_embeds), &flat(&r["image_embeds"]));
    assert!(d < 1e-4, "image embeddings: {d}");

    // Scores through the engine, as `clipscope score` computes them.
    let encoded_prompts = model.encode_prompts(&prompts).unwrap();
    let want_smart = flat(&r["smartclip_cosine"]); // (2 images, 3 prompts)
    let want_clip = flat(&r["clip_cosine"]);
    let want_hard = flat(&r["mask_hard"]);
    let want_sig = flat(&r["mask_sigmoid"]);
    for i in 0..2 {
        let scores = model
            .score(&encoded(&model, pixels, i), &encoded_prompts)
            .unwrap();
        for (j, s) in scores.iter().enumerate() {
            let sc = s.smartclip.as_ref().unwrap();
            assert!(
                (sc.score - want_smart[i * 3 + j]).abs() < 1e-4,
                "smartclip {i} {j}"
            );
            assert!(
                (s.clip_cosine - want_clip[i * 3 + j]).abs() < 1e-4,
                "clip {i} {j}"
            );
            let kept: Vec<f32> = sc
                .mask
                .iter()
                .map(|v| f32::from(u8::from(*v >= sc.threshold)))
                .collect();
            assert_eq!(kept, want_hard[j * 64..(j + 1) * 64], "hard mask {j}");
            assert!(max_diff(&sc.mask, &want_sig[j * 64..(j + 1) * 64]) < 1e-5);
            let expect_kept = json["mask"]["kept"][j].as_f64().unwrap() as f32 / 64.0;
            assert!((sc.mask_kept - expect_kept).abs() < 1e-6);
        }
    }
    // The fixture was made so masks differ between prompts and keep a fraction.
    let kept = &json["mask"]["kept"];
    assert!(kept.as_array().unwrap().iter().all(|k| {
        let k = k.as_u64().unwrap();
        k > 0 && k < 64
    }));
}

#[test]
fn training_losses_match_pytorch() {
    let (r, _) = reference();
    let model = LoadedModel::from_folder(&fixture("converted"), "smartclip-tiny").unwrap();
    let net = model.smartclip().unwrap();
    let (_, json) = reference();
    let prompts = prompts(&json);
    let tokenized: Vec<_> = prompts.iter().map(|p| model.tokenize(p).unwrap()).collect();
    let smart =
        clipscope::smartclip::encode_prompts(net, model.clip().unwrap(), &tokenized, 64).unwrap();
    let images = model
        .clip()
        .unwrap()
        .image_tokens(&r["loss_pixel_values"])
        .unwrap()
        .narrow(1, 0, 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    assert!(max_diff(&flat(&images), &flat(&r["loss_image_embeds"])) < 1e-4);
    let masks = smartclip::hard_mask(&smart.logits, net.config.mask_threshold).unwrap();
    let l = smartclip::losses(&images, &masks, &smart.texts, 100.0).unwrap();
    for (name, got) in [
        ("loss_sparse", &l.sparse),
        ("loss_sidm", &l.sidm),
        ("loss_dism", &l.dism),
        ("loss_total", &l.total),
    ] {
        let got: f32 = got.to_scalar().unwrap();
        let want = flat(&r[name])[0];
        assert!(
            (got - want).abs() < 1e-3 * want.abs().max(1.0),
            "{name}: {got} vs {want}"
        );
    }
}

#[test]
fn the_mask_net_at_our_default_width_matches_pytorch() {
    let path = fixture("masknet128.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu);
    let config = SmartConfig {
        mask_width: 128,
        mask_heads: 2,
        mask_layers: 1,
        text_pad_id: 49407,
        score_scale: 100.0,
        mask_threshold: 0.5,
    };
    let net = smartclip::from_weights(config, vb.pp("mask_net")).unwrap();
    let x = tensors["x"].to_dtype(DType::F32).unwrap();
    let logits = net.forward(&x).unwrap();
    let d = max_diff(
        &flat(&logits),
        &flat(&tensors["logits"].to_dtype(DType::F32).unwrap()),
    );
    assert!(d < 1e-4, "{d}");
}

#[test]
fn a_mask_wider_than_the_embedding_is_refused() {
    let mut model = LoadedModel::from_parts(
        clipscope::clip::zeros(&clipscope::train::clip::default_config()).unwrap(),
        "zeros",
    )
    .unwrap();
    let config = SmartConfig {
        mask_width: 64,
        mask_heads: 1,
        mask_layers: 1,
        text_pad_id: 49407,
        score_scale: 100.0,
        mask_threshold: 0.5,
    };
    let net = smartclip::from_weights(config, VarBuilder::zeros(DType::F32, &Device::Cpu)).unwrap();
    let err = model.set_smartclip(net).unwrap_err().to_string();
    assert!(err.contains("64 wide"), "{err}");
}
