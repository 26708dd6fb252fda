//! Broken and hostile model folders give one clear error each: missing or wrong-shaped tensors,
//! configs without a vision tower or with an unknown activation, absurd sizes, oversized or
//! deeply nested files, headers that promise more than the file holds, a tokenizer that is not one.

mod common;
use candle_core::{Device, Tensor};
use clipscope::engine::LoadedModel;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    common::parity("tiny_quick_gelu")
}

/// A copy of the fixture model whose weights (and config) `edit` may change.
fn broken(
    edit_weights: impl FnOnce(&mut std::collections::HashMap<String, Tensor>),
    edit_config: impl FnOnce(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut weights =
        candle_core::safetensors::load(fixture().join("model.safetensors"), &Device::Cpu).unwrap();
    edit_weights(&mut weights);
    candle_core::safetensors::save(&weights, dir.path().join("model.safetensors")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("config.json")).unwrap())
            .unwrap();
    edit_config(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

fn load_error(dir: &tempfile::TempDir) -> String {
    match LoadedModel::from_folder(dir.path(), "broken") {
        Ok(_) => panic!("a broken model loaded"),
        Err(e) => clipscope::error::one_line(&e),
    }
}

#[test]
fn intact_copy_loads() {
    let dir = broken(|_| {}, |_| {});
    assert!(LoadedModel::from_folder(dir.path(), "copy").is_ok());
}

#[test]
fn missing_tensor_is_named() {
    let dir = broken(
        |w| drop(w.remove("text_model.final_layer_norm.weight")),
        |_| {},
    );
    let err = load_error(&dir);
    assert!(
        err.contains("text_model.final_layer_norm.weight") && err.contains("does not fit"),
        "{err}"
    );
}

#[test]
fn wrong_shaped_tensor_is_named() {
    let dir = broken(
        |w| {
            w.insert(
                "visual_projection.weight".into(),
                Tensor::zeros((7, 5), candle_core::DType::F32, &Device::Cpu).unwrap(),
            );
        },
        |_| {},
    );
    let err = load_error(&dir);
    assert!(
        err.contains("visual_projection.weight") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn config_without_vision_config_is_refused() {
    let dir = broken(
        |_| {},
        |c| drop(c.as_object_mut().unwrap().remove("vision_config")),
    );
    assert!(load_error(&dir).contains("no vision_config"));
}

#[test]
fn unknown_activation_is_refused() {
    let dir = broken(|_| {}, |c| c["text_config"]["hidden_act"] = "swiglu".into());
    assert!(load_error(&dir).contains("unknown hidden_act \"swiglu\""));
}

#[test]
fn absurd_sizes_are_refused_before_anything_is_allocated() {
    let cases: [(&str, &str, serde_json::Value, &str); 6] = [
        (
            "vision_config",
            "hidden_size",
            1_000_000_000.into(),
            "hidden_size",
        ),
        (
            "text_config",
            "num_hidden_layers",
            1_000_000.into(),
            "num_hidden_layers",
        ),
        (
            "vision_config",
            "image_size",
            1_000_000.into(),
            "image_size",
        ),
        ("vision_config", "patch_size", 0.into(), "patch_size"),
        (
            "vision_config",
            "num_attention_heads",
            5.into(),
            "divisible",
        ),
        ("text_config", "vocab_size", u64::MAX.into(), "vocab_size"),
    ];
    for (tower, key, value, needle) in cases {
        let dir = broken(|_| {}, |c| c[tower][key] = value.clone());
        let start = std::time::Instant::now();
        let err = load_error(&dir);
        assert!(err.contains(needle), "{tower}.{key} = {value}: {err}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{tower}.{key} was not refused at once"
        );
    }
    // Sizes each within reason whose product is not: 16 G parameters at most.
    let dir = broken(
        |_| {},
        |c| {
            c["vision_config"]["hidden_size"] = 16_384.into();
            c["vision_config"]["intermediate_size"] = 131_072.into();
            c["vision_config"]["num_hidden_layers"] = 256.into();
            c["vision_config"]["num_attention_heads"] = 16.into();
        },
    );
    assert!(load_error(&dir).contains("16 G parameters"));
}

#[test]
fn oversized_and_deeply_nested_configs_are_refused() {
    let dir = broken(|_| {}, |_| {});
    // 100 MB of config.json (sparse: the file claims the size, the disk holds nothing).
    let f = std::fs::File::create(dir.path().join("config.json")).unwrap();
    f.set_len(100 << 20).unwrap();
    drop(f);
    let err = load_error(&dir);
    assert!(
        err.contains("config.json") && err.contains("too large"),
        "{err}"
    );
    // Nested a million levels deep: within the size limit, refused by the parser's depth limit.
    std::fs::write(dir.path().join("config.json"), "[".repeat(1_000_000)).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("config.json is not valid"), "{err}");
}

#[test]
fn a_header_promising_more_than_the_file_holds_is_refused() {
    let dir = broken(|_| {}, |_| {});
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    // A header length far past the end of the file.
    bytes[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("model.safetensors") && err.contains("header"),
        "{err}"
    );
}

#[test]
fn a_tokenizer_json_that_is_not_one_is_refused() {
    let dir = broken(|_| {}, |_| {});
    for text in ["{\"version\": \"1.0\"}", "not json at all", ""] {
        std::fs::write(dir.path().join("tokenizer.json"), text).unwrap();
        let err = load_error(&dir);
        assert!(err.contains("tokenizer.json"), "{text:?}: {err}");
    }
}

/// The embedded model's files in a folder, with the heads' files as given.
fn default_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/default-model");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(assets.join(f), dir.path().join(f)).unwrap();
    }
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn asset(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/default-model")
            .join(name),
    )
    .unwrap()
}

#[test]
fn broken_dcsm_scorers_and_smartclip_masks_are_refused_with_the_reason() {
    // A scorer for another backbone (50 rows: ViT-B/32) on our 197-row model.
    let json = String::from_utf8(asset("scorer.json"))
        .unwrap()
        .replace("\"rows\": 197", "\"rows\": 50");
    let dir = default_with(&[
        ("scorer.json", json.as_bytes()),
        ("scorer.safetensors", &asset("scorer.safetensors")),
    ]);
    let e = load_error(&dir);
    assert!(e.contains("50") && e.contains("scorer"), "{e}");

    // Truncated scorer weights.
    let weights = asset("scorer.safetensors");
    let dir = default_with(&[
        ("scorer.json", &asset("scorer.json")),
        ("scorer.safetensors", &weights[..weights.len() / 2]),
    ]);
    let e = load_error(&dir);
    assert!(e.contains("scorer.safetensors"), "{e}");

    // A scorer.json that is not one.
    let dir = default_with(&[
        ("scorer.json", b"{\"mode\": 3}"),
        ("scorer.safetensors", &weights),
    ]);
    let e = load_error(&dir);
    assert!(e.contains("scorer"), "{e}");

    // A SmartCLIP mask wider than the model's embedding.
    let json = String::from_utf8(asset("smartclip.json"))
        .unwrap()
        .replace("\"mask_width\": 128", "\"mask_width\": 256");
    let dir = default_with(&[
        ("smartclip.json", json.as_bytes()),
        ("smartclip.safetensors", &asset("smartclip.safetensors")),
    ]);
    let e = load_error(&dir);
    assert!(e.contains("mask") || e.contains("smartclip"), "{e}");

    // SmartCLIP weights missing.
    let dir = default_with(&[("smartclip.json", &asset("smartclip.json"))]);
    let e = load_error(&dir);
    assert!(e.contains("smartclip.safetensors"), "{e}");
}

#[test]
fn presets_name_their_family_and_unsupported_ones_say_why() {
    use clipscope::engine::ModelSource;
    assert_eq!(
        ModelSource::parse("laion-b32"),
        ModelSource::Preset("laion-b32".into())
    );
    assert_eq!(
        ModelSource::parse("laion-b32").to_string(),
        "laion-b32 (laion/CLIP-ViT-B-32-laion2B-s34B-b79K)"
    );
    // SigLIP presets load now (resolving one would download it, which tests never do).
    for name in ["siglip-b16", "siglip2-b16"] {
        let p = clipscope::io::presets::find(name).unwrap();
        assert!(
            p.unsupported.is_none() && p.family.contains("sigmoid"),
            "{p:?}"
        );
    }
    let err = ModelSource::parse("longclip-l")
        .resolve(&mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("pickled"), "{err}");
}
