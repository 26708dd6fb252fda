//! OpenCLIP checkpoints (`open_clip_config.json` + `open_clip_model.safetensors`, open_clip's key
//! names) against open_clip's own forward code on two random models it built
//! (tools/make_openclip_fixtures.py): pixels, every image and text token, pooled cosines.

mod common;

use clipscope::engine::{ImageConvention, LoadedModel, TextConvention};
use clipscope::io::preprocess::decode_file;
use common::{flat, load_f32, max_diff, rel_diff};

#[test]
fn open_clip_checkpoints_match_open_clips_own_forward() {
    for name in ["A", "B"] {
        let dir = common::fixture("openclip", name);
        let model = LoadedModel::from_folder(&dir, name).unwrap();
        assert_eq!(model.pipeline().image, ImageConvention::Openai);
        assert_eq!(model.pipeline().text, TextConvention::Openai);
        let reference = load_f32(&dir.join("reference.safetensors"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();

        let image = decode_file(&common::fixture("parity", "images/wide.png")).unwrap();
        let pre = model.preprocess_decoded(&image);
        let d = max_diff(&pre.pixels, &flat(&reference["pixel_values"]));
        assert!(d < 1e-5, "{name}: pixels differ by {d}");
        let encoded = model.encode_pixels(&pre).unwrap();
        let d = rel_diff(&flat(&encoded.tokens), &flat(&reference["image_tokens"]));
        assert!(d < 1e-4, "{name}: image tokens differ by {d}");

        let prompts: Vec<String> = json["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap().to_string())
            .collect();
        let text = model.encode_prompts(&prompts).unwrap();
        for (i, p) in json["prompts"].as_array().unwrap().iter().enumerate() {
            let ids: Vec<u32> = p["token_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                text.tokenized[i].ids, ids,
                "{name}: ids of {:?}",
                prompts[i]
            );
            assert_eq!(
                text.tokenized[i].truncated,
                p["truncated"].as_bool().unwrap()
            );
            let d = rel_diff(
                &flat(&text.tokens[i]),
                &flat(&reference[&format!("text_tokens.{i}")]),
            );
            assert!(d < 1e-4, "{name}: text tokens of prompt {i} differ by {d}");
        }
        let scores = model.score(&encoded, &text).unwrap();
        let cosines: Vec<f32> = scores.iter().map(|s| s.clip_cosine).collect();
        let d = max_diff(&cosines, &flat(&reference["clip_cosine"]));
        assert!(d < 1e-5, "{name}: cosines differ by {d}");
    }
}

#[test]
fn unsupported_open_clip_towers_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::fixture("openclip", "A");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.join("open_clip_config.json")).unwrap())
            .unwrap();
    for (path, value, says) in [
        (
            "/model_cfg/vision_cfg/attentional_pool",
            serde_json::json!(true),
            "attentional",
        ),
        (
            "/model_cfg/init_logit_bias",
            serde_json::json!(-10.0),
            "logit_bias",
        ),
        (
            "/model_cfg/text_cfg/hf_model_name",
            serde_json::json!("roberta-base"),
            "Hugging Face tower",
        ),
    ] {
        let mut c = config.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        c.pointer_mut(parent).unwrap()[key] = value;
        std::fs::write(dir.path().join("open_clip_config.json"), c.to_string()).unwrap();
        std::fs::copy(
            base.join("open_clip_model.safetensors"),
            dir.path().join("open_clip_model.safetensors"),
        )
        .unwrap();
        let err = LoadedModel::from_folder(dir.path(), "bad")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(says) && err.contains("not supported"),
            "{path}: {err}"
        );
    }
}
