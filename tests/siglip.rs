//! SigLIP and SigLIP 2 folders (`SiglipModel`: config.json, model.safetensors, spiece.model or
//! tokenizer.json) against transformers on random models it built
//! (tools/make_siglip_fixtures.py): pixels, dense patch tokens through the pooling head, pooled
//! embeddings, every text position, sigmoid scores and token ids.

mod common;

use clipscope::engine::{Family, LoadedModel, ScoreKind};
use clipscope::io::preprocess::decode_file;
use common::{flat, load_f32, max_diff, rel_diff};
use serde_json::Value;

fn reference(name: &str) -> (std::path::PathBuf, Value) {
    let dir = common::fixture("siglip", name);
    let json = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    (dir, serde_json::from_str(&json).unwrap())
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u32)
        .collect()
}

/// candle-transformers' own SigLIP vision trunk (`--features candle-transformers`) on the same
/// weights: ours matches it, and runs faster (README, "Speed").
#[cfg(feature = "candle-transformers")]
fn candle_transformers_trunk(dir: &std::path::Path, pixels: &candle_core::Tensor) -> Vec<f32> {
    use candle_transformers::models::siglip::{Config, VisionModel};
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let mut raw: Value = serde_json::from_str(&text).unwrap();
    // transformers 5 writes unset ids as null, which candle-transformers' Config refuses.
    for tower in ["text_config", "vision_config"] {
        raw[tower]
            .as_object_mut()
            .unwrap()
            .retain(|_, v| !v.is_null());
    }
    let config: Config = serde_json::from_value(raw).unwrap();
    let vb = clipscope::io::weights::var_builder(
        &dir.join("model.safetensors"),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let trunk = VisionModel::new(&config.vision_config, false, vb.pp("vision_model")).unwrap();
    flat(&candle_core::Module::forward(&trunk, pixels).unwrap())
}

#[test]
fn siglip_folders_match_transformers() {
    for name in ["A", "B"] {
        let (dir, json) = reference(name);
        let model = LoadedModel::from_folder(&dir, name).unwrap();
        assert_eq!(model.family(), Family::Siglip);
        assert_eq!(model.family().score_kind(), ScoreKind::Sigmoid);
        assert!(model.scorers().is_empty() && model.smartclip().is_none());
        let r = load_f32(&dir.join("reference.safetensors"));

        let image = decode_file(&common::fixture("parity", "images/wide.png")).unwrap();
        let pre = model.preprocess_decoded(&image);
        let d = max_diff(&pre.pixels, &flat(&r["pixel_values"]));
        assert!(d < 1e-5, "{name}: pixels differ by {d}");
        assert_eq!(
            (pre.crop.w, pre.crop.h),
            (97.0, 61.0),
            "SigLIP sees the whole image"
        );
        let encoded = model.encode_pixels(&pre).unwrap();
        assert!(!encoded.cls_row);
        let d = rel_diff(&flat(&encoded.tokens), &flat(&r["image_dense"]));
        assert!(d < 1e-4, "{name}: dense image tokens differ by {d}");
        let d = rel_diff(&flat(&encoded.pooled), &flat(&r["image_embeds"]));
        assert!(d < 1e-4, "{name}: pooled image embedding differs by {d}");
        let pixels = candle_core::Tensor::from_slice(
            &pre.pixels,
            (1, 3, pre.side, pre.side),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let siglip = model.siglip().unwrap();
        let hidden = flat(&siglip.vision_hidden(&pixels).unwrap());
        let d = rel_diff(&hidden, &flat(&r["vision_hidden"]));
        assert!(d < 1e-4, "{name}: the vision trunk differs by {d}");
        #[cfg(feature = "candle-transformers")]
        {
            let d = rel_diff(&hidden, &candle_transformers_trunk(&dir, &pixels));
            assert!(
                d < 1e-4,
                "{name}: candle-transformers' trunk differs from ours by {d}"
            );
        }

        let prompts: Vec<String> = json["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap().to_string())
            .collect();
        let text = model.encode_prompts(&prompts).unwrap();
        let scores = model.score(&encoded, &text).unwrap();
        let probs = flat(&r["probs"]);
        let logits = flat(&r["logits_per_image"]);
        let context = 64;
        let want_tokens = flat(&r["text_tokens"]);
        let want_pooled = flat(&r["text_embeds"]);
        let d_out = want_pooled.len() / prompts.len();
        for (i, p) in json["prompts"].as_array().unwrap().iter().enumerate() {
            let want_ids = ids(&p["ids_unpadded"]);
            let t = &text.tokenized[i];
            assert_eq!(t.ids, want_ids, "{name}: ids of {:?}", prompts[i]);
            assert_eq!(t.truncated, p["truncated"].as_bool().unwrap(), "{name} {i}");
            let n = want_ids.len();
            let want = &want_tokens[i * context * d_out..(i * context + n) * d_out];
            let d = rel_diff(&flat(&text.tokens[i]), want);
            assert!(d < 1e-4, "{name}: text tokens of prompt {i} differ by {d}");
            let want = &want_pooled[i * d_out..(i + 1) * d_out];
            let d = rel_diff(&flat(&text.pooled[i]), want);
            assert!(d < 1e-4, "{name}: pooled text of prompt {i} differs by {d}");
            let s = &scores[i];
            assert!(!s.dcsm.cls_row && s.dcsm.rows == model.grid().0 * model.grid().1);
            let logit =
                s.clip_cosine * model.logit_scale_exp().unwrap() + model.logit_bias().unwrap();
            assert!(
                (logit - logits[i]).abs() < 1e-4,
                "{name}: logit {logit} vs {}",
                logits[i]
            );
            assert!(
                (s.clip_prob - probs[i]).abs() < 1e-5,
                "{name}: sigmoid of prompt {i}"
            );
        }
        // Sigmoids stand alone: they need not sum to 1 (a softmax would).
        let sum: f32 = scores.iter().map(|s| s.clip_prob).sum();
        assert!((sum - 1.0).abs() > 1e-3, "{name}: sigmoids summed to {sum}");
    }
}

#[test]
fn siglip_tokenizers_match_transformers_own() {
    for name in ["A", "B"] {
        let (dir, json) = reference(name);
        let model = LoadedModel::from_folder(&dir, name).unwrap();
        let eos = model.tokenizer().eos_id();
        let mut checked = 0;
        for case in json["tokenizer_cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want = ids(&case["ids"]);
            let got = model.tokenize(text);
            if want.iter().all(|&i| i == eos) || text.trim().is_empty() {
                // Nothing but EOS, or only whitespace (Gemma's kind makes a `▁` of each space):
                // clipscope refuses the prompt with a one-line message.
                let e = got.expect_err(text).to_string();
                assert!(e.contains("empty"), "{name} {text:?}: {e}");
                continue;
            }
            let got = got.unwrap_or_else(|e| panic!("{name} {text:?}: {e}"));
            assert_eq!(got.ids, want, "{name}: ids of {text:?}");
            assert_eq!(got.labels.last().map(String::as_str), Some("EOS"));
            checked += 1;
        }
        assert!(checked >= 12, "{name}: only {checked} cases compared");
    }
}

#[test]
fn siglip_words_group_their_pieces_and_skip_no_sos() {
    let (dir, _) = reference("A");
    let model = LoadedModel::from_folder(&dir, "A").unwrap();
    let t = model.tokenize("a red circle above a blue square").unwrap();
    let words: Vec<&str> = t.words.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(
        words,
        ["a", "red", "circle", "above", "a", "blue", "square", "EOS"]
    );
    assert_eq!(
        t.first_content_token().map(|i| t.words[1].start == i),
        Some(true)
    );
    assert!(!t.pools_early());
}

#[test]
fn bad_siglip_folders_get_one_line_errors() {
    let (dir, _) = reference("A");
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    let e = LoadedModel::from_folder(tmp.path(), "t")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("spiece.model") && !e.contains('\n'), "{e}");
    std::fs::copy(dir.join("spiece.model"), tmp.path().join("spiece.model")).unwrap();
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let naflex = config.replacen("\"siglip\"", "\"siglip2\"", 1);
    std::fs::write(tmp.path().join("config.json"), naflex).unwrap();
    let e = LoadedModel::from_folder(tmp.path(), "t")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("siglip2") && e.contains("NaFlex"), "{e}");
    std::fs::write(tmp.path().join("config.json"), &config).unwrap();
    std::fs::write(tmp.path().join("spiece.model"), b"not a protobuf").unwrap();
    let e = LoadedModel::from_folder(tmp.path(), "t")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("SentencePiece"), "{e}");
    // A view other than the plain one is refused by name, not run on the wrong tower.
    std::fs::copy(dir.join("spiece.model"), tmp.path().join("spiece.model")).unwrap();
    let model = LoadedModel::from_folder(tmp.path(), "t").unwrap();
    let image = decode_file(&common::fixture("parity", "images/wide.png")).unwrap();
    let e = model
        .dense_image(&image, Some(128), false)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("CLIP vision tower"), "{e}");
}
