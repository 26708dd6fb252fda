//! Map sources, resolutions, CLIP Surgery and tiles against the PyTorch reference on
//! `transformers`' random parity models (tools/map_sources.py, tests/fixtures/sources).

mod common;

use candle_core::Tensor;
use clipscope::engine::{LoadedModel, MapSource, MapView};
use clipscope::io::preprocess::decode_file;
use common::{flat, load_f32, max_diff, rel_diff};
use std::collections::HashMap;

const MODELS: [&str; 2] = ["tiny_gelu", "tiny_quick_gelu"];

struct Fixture {
    tensors: HashMap<String, Tensor>,
    json: serde_json::Value,
}

fn fixture() -> Fixture {
    let tensors = load_f32(&common::fixture("sources", "reference.safetensors"));
    let text = std::fs::read_to_string(common::fixture("sources", "reference.json")).unwrap();
    Fixture {
        tensors,
        json: serde_json::from_str(&text).unwrap(),
    }
}

fn model(name: &str) -> LoadedModel {
    LoadedModel::from_folder(&common::fixture("parity", name), name).unwrap()
}

fn prompts(f: &Fixture, m: &str) -> Vec<String> {
    f.json["models"][m]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect()
}

fn image(stem: &str) -> clipscope::engine::Decoded {
    decode_file(&common::fixture("parity", &format!("images/{stem}.png"))).unwrap()
}

#[test]
fn every_source_matches_its_reference_at_the_models_size_and_twice_it() {
    let f = fixture();
    for m in MODELS {
        let model = model(m);
        let info = &f.json["models"][m];
        let dense = model.dense_image(&image("wide"), None, false).unwrap();
        for s in info["sources"].as_array().unwrap() {
            let source: MapSource = s.as_str().unwrap().parse().unwrap();
            let got = &model.view_tokens(&dense, source).unwrap()[0];
            let want = &f.tensors[&format!("{m}.tokens.{source}")];
            let d = rel_diff(&flat(got), &flat(want));
            assert!(d < 1e-4, "{m} {source}: tokens differ by {d}");
        }
        let side = info["resolution_2x"].as_u64().unwrap() as u32;
        let dense = model
            .dense_image(&image("wide"), Some(side), false)
            .unwrap();
        assert_eq!(dense.layout.grid().0, 2 * model.grid().0);
        for s in info["sources_2x"].as_array().unwrap() {
            let source: MapSource = s.as_str().unwrap().parse().unwrap();
            let got = &model.view_tokens(&dense, source).unwrap()[0];
            let want = &f.tensors[&format!("{m}.tokens_2x.{source}")];
            let d = rel_diff(&flat(got), &flat(want));
            assert!(d < 1e-4, "{m} {source} at {side} px: tokens differ by {d}");
        }
    }
}

#[test]
fn surgery_matches_clip_surgery_over_the_prompts_of_the_image() {
    let f = fixture();
    for m in MODELS {
        let model = model(m);
        let prompts = model.encode_prompts(&prompts(&f, m)).unwrap();
        let dense = model.dense_image(&image("wide"), None, false).unwrap();
        for source in [MapSource::Raw, MapSource::ClearClip] {
            let view = MapView {
                source,
                surgery: true,
                ..MapView::default()
            };
            let maps = model.view_maps(&dense, &view, &prompts).unwrap();
            for (i, map) in maps.maps.iter().enumerate() {
                let want = &f.tensors[&format!("{m}.surgery.{source}.{i}")];
                let d = max_diff(&map.data, &flat(want));
                assert!(
                    d < 1e-4,
                    "{m} {source} prompt {i}: surgery maps differ by {d}"
                );
            }
        }
    }
}

#[test]
fn tiles_cover_the_whole_image_as_the_reference_averages_them() {
    let f = fixture();
    for m in MODELS {
        let model = model(m);
        let prompts = model.encode_prompts(&prompts(&f, m)).unwrap();
        for stem in ["wide", "tall"] {
            let layout = &f.json["models"][m]["tiles"][format!("{stem}.png")];
            let dense = model.dense_image(&image(stem), None, true).unwrap();
            let offsets: Vec<u32> = layout["offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(dense.layout.offsets, offsets, "{m} {stem}: windows");
            let (rows, cols) = dense.layout.grid();
            assert_eq!(
                (rows as u64, cols as u64),
                (
                    layout["map_rows"].as_u64().unwrap(),
                    layout["map_cols"].as_u64().unwrap()
                )
            );
            let cases = [
                (MapSource::Raw, false, "tiles.raw"),
                (MapSource::ClearClip, false, "tiles.clearclip"),
                (MapSource::Raw, true, "tiles_surgery.raw"),
            ];
            for (source, surgery, key) in cases {
                let view = MapView {
                    source,
                    surgery,
                    tiles: true,
                    ..MapView::default()
                };
                let maps = model.view_maps(&dense, &view, &prompts).unwrap();
                for (i, map) in maps.maps.iter().enumerate() {
                    let want = f.tensors[&format!("{m}.{key}.{stem}.{i}")]
                        .to_vec3::<f32>()
                        .unwrap();
                    let mut d = 0f32;
                    for (t, plane) in want.iter().enumerate() {
                        for (r, row) in plane.iter().enumerate() {
                            for (c, v) in row.iter().enumerate() {
                                d = d.max((map.get(1 + r * cols + c, t) - v).abs());
                            }
                        }
                    }
                    assert!(d < 1e-4, "{m} {stem} {key} prompt {i}: tiles differ by {d}");
                }
            }
        }
    }
}

#[test]
fn the_plain_view_is_the_scores_map_and_bad_views_are_refused() {
    let model = model("tiny_gelu");
    let prompts = model
        .encode_prompts(&["a red circle".to_string(), "a blue square".to_string()])
        .unwrap();
    let img = image("wide");
    let dense = model.dense_image(&img, None, false).unwrap();
    let maps = model
        .view_maps(&dense, &MapView::default(), &prompts)
        .unwrap();
    let scores = model
        .score(&model.encode_decoded(&img).unwrap(), &prompts)
        .unwrap();
    for (m, s) in maps.maps.iter().zip(&scores) {
        assert!(max_diff(&m.data, &s.dcsm.data) < 1e-5);
    }
    for bad in [Some(55), Some(0), Some(5000)] {
        let err = model.dense_image(&img, bad, false).unwrap_err().to_string();
        assert!(err.contains("multiple of the patch"), "{err}");
    }
    let err = "layer:0".parse::<MapSource>().unwrap_err();
    assert!(err.contains("layer:N"), "{err}");
    let dense = model.dense_image(&img, None, false).unwrap();
    let err = model
        .view_tokens(&dense, MapSource::Layer(9))
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 blocks"), "{err}");
}
