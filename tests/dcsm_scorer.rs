//! The DCSM scorer against our PyTorch re-implementation of the reference (tools/dcsm_reference.py),
//! in both column modes, and a checkpoint converted from a release-shaped torch file.

mod common;

use common::max_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clipscope::dcsm::scorer::{global_zscore, word_token_starts, ColumnMode, Scorer, ScorerConfig};
use clipscope::model::ClipTokenizer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dcsm")
        .join(sub)
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn load(sub: &str) -> (HashMap<String, Tensor>, serde_json::Value) {
    let tensors =
        candle_core::safetensors::load(dir(sub).join("reference.safetensors"), &Device::Cpu)
            .unwrap();
    let json =
        serde_json::from_str(&std::fs::read_to_string(dir(sub).join("reference.json")).unwrap())
            .unwrap();
    (tensors, json)
}

fn check(
    scorer: &Scorer,
    mode: &str,
    reference: &HashMap<String, Tensor>,
    json: &serde_json::Value,
    replaced_key: &serde_json::Value,
) {
    let tokenizer = ClipTokenizer::bundled().unwrap();
    let captions: Vec<String> = json["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().into())
        .collect();
    let replacements: Vec<_> = captions
        .iter()
        .map(|c| scorer.replacements(c, &word_token_starts(&tokenizer, c)))
        .collect();
    // The same columns as the reference, caption by caption.
    for (i, reps) in replacements.iter().enumerate() {
        let expected: Vec<(u64, u64)> = replaced_key[i]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["table_index"].as_u64().unwrap(),
                    r["column"].as_u64().unwrap(),
                )
            })
            .collect();
        let got: Vec<(u64, u64)> = reps
            .iter()
            .map(|r| (r.table_index as u64, r.column as u64))
            .collect();
        assert_eq!(got, expected, "{mode}: columns of {:?}", captions[i]);
    }
    let maps = &reference["maps"];
    let replaced = scorer.replace(maps, &replacements).unwrap();
    assert!(
        max_diff(
            &values(&replaced),
            &values(&reference[&format!("{mode}.replaced")])
        ) == 0.0
    );
    let z = global_zscore(&replaced).unwrap();
    let dz = max_diff(&values(&z), &values(&reference[&format!("{mode}.zscored")]));
    assert!(dz < 1e-5, "{mode}: z-scores differ by {dz}");
    let scores = scorer.score(maps, &replacements).unwrap();
    let ds = max_diff(
        &values(&scores),
        &values(&reference[&format!("{mode}.scores")]),
    );
    assert!(ds < 1e-5, "{mode}: scores differ by {ds}");
}

fn with_mode(scorer_dir: &Path, mode: ColumnMode) -> Scorer {
    let mut s = Scorer::load(scorer_dir).unwrap();
    s.config.mode = mode;
    s
}

#[test]
fn both_column_modes_match_the_reference() {
    let (reference, json) = load("");
    check(
        &with_mode(&dir(""), ColumnMode::Paper),
        "paper",
        &reference,
        &json,
        &json["replaced"]["paper"],
    );
    check(
        &with_mode(&dir(""), ColumnMode::Aligned),
        "aligned",
        &reference,
        &json,
        &json["replaced"]["aligned"],
    );
    // The network alone, on the raw maps.
    let scorer = Scorer::load(&dir("")).unwrap();
    let d = max_diff(
        &values(&scorer.network(&reference["maps"]).unwrap()),
        &values(&reference["cnn_only.scores"]),
    );
    assert!(d < 1e-5, "network alone differs by {d}");
}

#[test]
fn a_converted_release_checkpoint_scores_like_the_original() {
    let (reference, json) = load("converted");
    let scorer = Scorer::load(&dir("converted")).unwrap();
    assert_eq!(scorer.config.mode, ColumnMode::Paper);
    check(&scorer, "paper", &reference, &json, &json["replaced"]);
}

#[test]
fn the_b16_scorer_has_the_papers_parameter_count() {
    let varmap = VarMap::new();
    let config = ScorerConfig {
        mode: ColumnMode::Paper,
        rows: 197,
        columns: 30,
        functional_words: [
            "above", "below", "left", "right", "small", "big", "not", "no", "without", "but",
            "absent",
        ]
        .map(String::from)
        .to_vec(),
        pad_id: 49407,
    };
    Scorer::new(
        config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let data = varmap.data().lock().unwrap();
    let total: usize = data
        .iter()
        .filter(|(k, _)| *k != "functional_embeddings")
        .map(|(_, v)| v.elem_count())
        .sum();
    assert_eq!(total, 3_026_365);
    assert_eq!(data["functional_embeddings"].dims(), &[11, 197]);
}
