//! Broken model folders give one clear error each: missing or wrong-shaped tensors, configs
//! without a vision tower or with an unknown activation.

use candle_core::{Device, Tensor};
use clipscope::model::LoadedModel;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/tiny_quick_gelu")
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
        Err(e) => e.to_string(),
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
