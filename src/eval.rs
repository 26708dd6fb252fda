//! The probe benchmark: accuracy per probe family and split, and how well word maps localise.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::{preprocess, LoadedModel, MapSource, MapView, ModelError};
use crate::world::{self, Family, Scene, Split, FAMILIES};

/// One scene to evaluate: its image and exact description.
pub struct Item {
    pub image: image::DynamicImage,
    pub scene: Scene,
    pub probes: Vec<world::Probe>,
}

/// Scenes `0..n` of a split, rendered by our renderer.
pub fn synthetic(seed: u64, split: Split, n: u64) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let scene = world::scene(seed, split, i);
            Item {
                image: image::DynamicImage::ImageRgb8(world::render(&scene)),
                probes: scene.probes(i),
                scene,
            }
        })
        .collect()
}

/// Scenes written by `clipscope synth` or tools/render_scenes.py: `dir/scenes.jsonl` + PNGs.
pub fn from_folder(dir: &Path) -> Result<Vec<Item>, ModelError> {
    let index = dir.join("scenes.jsonl");
    let text = std::fs::read_to_string(&index).map_err(|e| ModelError::Io {
        path: index.clone(),
        source: e,
    })?;
    #[derive(serde::Deserialize)]
    struct Line {
        file: String,
        scene: Scene,
        probes: Vec<world::Probe>,
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: Line = serde_json::from_str(l).map_err(|e| ModelError::Json {
                what: format!("{}: a line is not a scene", index.display()),
                source: e,
            })?;
            Ok(Item {
                image: preprocess::decode_file(&dir.join(&line.file))?.image,
                scene: line.scene,
                probes: line.probes,
            })
        })
        .collect()
}

/// Right answers out of asked questions.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    pub correct: usize,
    pub total: usize,
}

impl Tally {
    pub fn accuracy(&self) -> Option<f64> {
        (self.total > 0).then(|| self.correct as f64 / self.total as f64)
    }
}

/// Results on one set of scenes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SplitReport {
    pub scenes: usize,
    /// Per family, per scorer (`clip`, later `dcsm`, `smartclip`).
    pub families: BTreeMap<String, BTreeMap<String, Tally>>,
    /// Objects whose shape-word map peaks on a patch whose centre lies inside the object grown by
    /// half a patch.
    pub localisation: Tally,
    /// The same measure on the maps of every map source (`raw` equals `localisation`).
    pub localisation_by_source: BTreeMap<String, Tally>,
}

/// Scores every probe of every item with plain CLIP and every scorer of the model, and measures
/// localisation.
pub fn evaluate(model: &LoadedModel, items: &[Item]) -> Result<SplitReport, ModelError> {
    let mut report = SplitReport {
        scenes: items.len(),
        ..Default::default()
    };
    for f in FAMILIES {
        report.families.insert(f.name().into(), BTreeMap::new());
    }
    let (rows, cols) = model.grid();
    for item in items {
        // One tower pass per scene: the scores' image and every map source come from its states.
        let dense = model.dense_image(&item.image.clone().into(), None, false)?;
        let image = model.encoded_from_dense(&dense)?;
        for probe in &item.probes {
            let mut captions = vec![probe.truth.clone()];
            captions.extend(probe.negatives.iter().cloned());
            let scores = model.score(&image, &model.encode_prompts(&captions)?)?;
            let truth = scores[0].clip_cosine;
            let mut verdicts = vec![("clip", scores[1..].iter().all(|s| truth > s.clip_cosine))];
            for (n, d) in scores[0].dcsm_scores.iter().enumerate() {
                let beaten = scores[1..]
                    .iter()
                    .all(|s| s.dcsm_scores.get(n).is_some_and(|o| d.score > o.score));
                verdicts.push((d.scorer, beaten));
            }
            if let Some(t) = &scores[0].smartclip {
                let beaten = scores[1..]
                    .iter()
                    .all(|s| s.smartclip.as_ref().is_some_and(|o| t.score > o.score));
                verdicts.push(("smartclip", beaten));
            }
            let family = report
                .families
                .entry(probe.family.name().into())
                .or_default();
            for (scorer, right) in verdicts {
                let tally = family.entry(scorer.into()).or_default();
                tally.total += 1;
                tally.correct += usize::from(right);
            }
        }
        // Localisation: "a red circle" → the map of "circle" should peak on the circle.
        let phrases: Vec<String> = item
            .scene
            .objects
            .iter()
            .map(world::Object::phrase)
            .collect();
        let prompts = model.encode_prompts(&phrases)?;
        let scores = model.score(&image, &prompts)?;
        let maps: Vec<&crate::dcsm::Matrix> = scores.iter().map(|s| &s.dcsm).collect();
        tally_localisation(&mut report.localisation, item, &scores, &maps, rows, cols);
        for source in MapSource::all(model.config().vision.num_hidden_layers) {
            let view = MapView {
                source,
                ..MapView::default()
            };
            let maps = model.view_maps(&dense, &view, &prompts)?;
            let refs: Vec<&crate::dcsm::Matrix> = maps.maps.iter().collect();
            let tally = report
                .localisation_by_source
                .entry(source.to_string())
                .or_default();
            tally_localisation(tally, item, &scores, &refs, rows, cols);
        }
    }
    Ok(report)
}

/// Counts the objects whose shape word's map (in `maps`, one per object phrase) peaks on a
/// patch whose centre lies inside the object grown by half a patch.
fn tally_localisation(
    tally: &mut Tally,
    item: &Item,
    scores: &[crate::engine::PromptScore],
    maps: &[&crate::dcsm::Matrix],
    rows: usize,
    cols: usize,
) {
    for ((object, s), map) in item.scene.objects.iter().zip(scores).zip(maps) {
        let Some(word) = s
            .tokenized
            .words
            .iter()
            .find(|w| w.text == object.shape.word())
        else {
            continue;
        };
        let patch = crate::dcsm::patch_map(map, word.start);
        let peak = patch
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, v)| {
                if *v > best.1 {
                    (i, *v)
                } else {
                    best
                }
            })
            .0;
        tally.total += 1;
        tally.correct +=
            usize::from(rows == cols && world::geometry::patches_on(object, cols).contains(&peak));
    }
}

/// Family names in table order.
pub fn family_names() -> Vec<&'static str> {
    FAMILIES.iter().map(|f: &Family| f.name()).collect()
}
