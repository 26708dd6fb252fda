//! The DCSM scorer against our PyTorch re-implementation of the reference (tools/dcsm_reference.py),
//! in both column modes, and a checkpoint converted from a release-shaped torch file.

mod common;

use common::max_diff;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clipscope::dcsm::scorer::{
    global_zscore, word_token_starts, Architecture, ColumnMode, Scorer, ScorerConfig,
    FUNCTIONAL_WORDS,
};
use clipscope::engine::ClipTokenizer;
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
        architecture: Architecture::Paper,
        rows: 197,
        columns: 30,
        functional_words: FUNCTIONAL_WORDS.map(String::from).to_vec(),
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

fn tiny_gelu() -> clipscope::engine::LoadedModel {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity/tiny_gelu");
    clipscope::engine::LoadedModel::from_folder(&dir, "tiny_gelu").unwrap()
}

fn parity_prompts() -> Vec<String> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity/tiny_gelu/reference.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir).unwrap()).unwrap();
    json["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn padded_text_columns_match_transformers_with_an_attention_mask() {
    let model = tiny_gelu();
    let cols = model.encode_columns(&parity_prompts(), 30, 49407).unwrap();
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity/tiny_gelu/padded30.safetensors");
    let want = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let d = max_diff(
        &cols.normalized.flatten_all().unwrap().to_vec1().unwrap(),
        &want["columns"].flatten_all().unwrap().to_vec1().unwrap(),
    );
    assert!(d < 1e-4, "padded columns differ from transformers by {d}");
}

#[test]
fn the_shared_text_pass_gives_the_scorer_the_same_columns() {
    let mut model = tiny_gelu();
    let (g, _) = model.grid();
    let config = ScorerConfig {
        mode: ColumnMode::Aligned,
        architecture: Architecture::Grid,
        rows: 1 + g * g,
        columns: 30,
        functional_words: FUNCTIONAL_WORDS.map(String::from).to_vec(),
        pad_id: 49407,
    };
    let varmap = VarMap::new();
    let table = Tensor::zeros((11, 1 + g * g), DType::F32, &Device::Cpu).unwrap();
    let scorer = Scorer::with_table(
        config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        table,
    )
    .unwrap();
    model.add_scorer(scorer).unwrap();
    let mut prompts = parity_prompts();
    // Longer than the scorer's 30 columns: it takes the second, truncated pass.
    prompts.push(["a red circle"; 12].join(" and "));
    let shared = model.encode_prompts(&prompts).unwrap();
    let columns = shared.columns.as_ref().unwrap();
    let alone = model.encode_columns(&prompts, 30, 49407).unwrap();
    assert_eq!(columns.tokenized, alone.tokenized);
    assert!(columns.tokenized.last().unwrap().truncated);
    let d = max_diff(
        &columns.normalized.flatten_all().unwrap().to_vec1().unwrap(),
        &alone.normalized.flatten_all().unwrap().to_vec1().unwrap(),
    );
    assert!(d < 1e-5, "{d}");
    // Scores come out for every prompt, z-scored together.
    let image = model
        .encode_image(&image::DynamicImage::new_rgb8(40, 40))
        .unwrap();
    let scores = model.score(&image, &shared).unwrap();
    assert!(scores
        .iter()
        .all(|s| s.dcsm_score().is_some_and(f32::is_finite)));
    let left = scores
        .iter()
        .find(|s| s.tokenized.text.contains("left"))
        .unwrap();
    assert!(left.functional.iter().any(|r| r.word == "left"));
}

#[test]
fn paper_mode_scores_the_papers_rewritten_caption() {
    let mut model = tiny_gelu();
    let (g, _) = model.grid();
    let config = ScorerConfig {
        mode: ColumnMode::Paper,
        architecture: Architecture::Paper,
        rows: 1 + g * g,
        columns: 30,
        functional_words: FUNCTIONAL_WORDS.map(String::from).to_vec(),
        pad_id: 49407,
    };
    let varmap = VarMap::new();
    let table = Tensor::randn(0f32, 1.0, (11, 1 + g * g), &Device::Cpu).unwrap();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    model
        .add_scorer(Scorer::with_table(config, vb, table).unwrap())
        .unwrap();
    let image = model
        .encode_image(&image::DynamicImage::new_rgb8(40, 40))
        .unwrap();
    let score = |prompts: &[&str]| {
        let prompts: Vec<String> = prompts.iter().map(|p| p.to_string()).collect();
        model
            .score(&image, &model.encode_prompts(&prompts).unwrap())
            .unwrap()
    };
    let typed = score(&["a cat behind a dog", "a cup on the top shelf", "a dog"]);
    let read = score(&["a cat above a dog", "a cup on the above shelf", "a dog"]);
    assert_eq!(typed[0].dcsm_text.as_deref(), Some("a cat above a dog"));
    assert_eq!(
        typed[1].dcsm_text.as_deref(),
        Some("a cup on the above shelf")
    );
    assert_eq!(typed[2].dcsm_text, None);
    for (t, r) in typed.iter().zip(&read) {
        let (a, b) = (t.dcsm_score().unwrap(), r.dcsm_score().unwrap());
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        assert_eq!(t.functional, r.functional);
    }
    assert!(typed[0].functional.iter().any(|f| f.word == "above"));
    // Plain CLIP reads what the user typed.
    assert!((typed[0].clip_cosine - read[0].clip_cosine).abs() > 1e-6);
}
