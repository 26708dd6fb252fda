//! The embedded default model: loads through the engine at 14×14 patches, recognises objects
//! where a random model of the same shape cannot (here and on independently rendered scenes), its
//! shape-word maps peak on their objects, and its DCSM scorer reads spatial relations better than
//! plain CLIP.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use clipscope::clip::Clip;
use clipscope::engine::{LoadedModel, ModelSource};
use clipscope::eval::{evaluate, synthetic, SplitReport};
use clipscope::world::Split;

fn report(model: &LoadedModel) -> SplitReport {
    evaluate(model, &synthetic(4242, Split::Validation, 80)).unwrap()
}

/// A randomly initialised model that is the same on every run: candle's CPU generator cannot be
/// seeded, so each variable is redrawn from a seeded generator with the mean and spread its own
/// initialiser gave it (layer-norm weights stay 1, biases 0).
fn seeded_random_model(config: &clipscope::engine::ClipConfig) -> Clip {
    use rand::{Rng, SeedableRng};
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // A first build creates the variables; the model is built again after they are redrawn,
    // because an inference model keeps its own transposed copies of the weights.
    Clip::new(config, false, vb.clone()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let values: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let n = values.len() as f32;
        let mean = values.iter().sum::<f32>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        // Box-Muller normals from the seeded generator.
        let fresh: Vec<f32> = (0..values.len())
            .map(|_| {
                let (u, v): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                mean + std * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        var.set(&candle_core::Tensor::from_vec(fresh, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
    drop(data);
    Clip::new(config, false, vb).unwrap()
}

fn independent() -> Vec<clipscope::eval::Item> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/independent");
    clipscope::eval::from_folder(&dir).unwrap()
}

#[test]
fn embedded_model_describes_and_localises() {
    let trained = LoadedModel::load(&ModelSource::Embedded, &mut |_| {}).unwrap();
    assert_eq!(trained.grid(), (14, 14), "the paper's 197 image rows");
    let config = trained.config().clone();
    let random = seeded_random_model(&config);
    let random = LoadedModel::from_parts(random, "random").unwrap();
    let (t, r) = (report(&trained), report(&random));

    eprintln!(
        "trained: description {:?}, localisation {:?}; random: description {:?}, localisation {:?}",
        t.families["description"]["clip"],
        t.localisation,
        r.families["description"]["clip"],
        r.localisation
    );
    // Description: the truth among three captions; chance is a third.
    let td = t.families["description"]["clip"];
    let rd = r.families["description"]["clip"];
    assert!(td.total >= 60);
    assert!(
        td.accuracy().unwrap() >= MIN_DESCRIPTION,
        "trained description {td:?}"
    );
    assert!(
        rd.accuracy().unwrap() < 0.45,
        "a random model should not reach this: {rd:?}"
    );

    // Localisation, strict: the shape word's map peaks on a patch whose centre lies on the object
    // (grown by half a patch). A random model's maps still peak on *some* object often enough on
    // plain backgrounds; the trained maps must do far better.
    let tl = t.localisation.accuracy().unwrap();
    let rl = r.localisation.accuracy().unwrap();
    assert!(
        tl >= MIN_LOCALISATION,
        "trained localisation {:?}",
        t.localisation
    );
    assert!(tl >= rl + 0.3, "trained {tl:.3} vs random {rl:.3}");
}

#[test]
fn embedded_model_recognises_shapes_drawn_by_another_renderer() {
    let model = LoadedModel::load(&ModelSource::Embedded, &mut |_| {}).unwrap();
    let r = evaluate(&model, &independent()).unwrap();
    let d = r.families["description"]["clip"];
    eprintln!(
        "independent: description {d:?}, localisation {:?}",
        r.localisation
    );
    assert_eq!(r.scenes, 48);
    assert!(d.accuracy().unwrap() >= MIN_DESCRIPTION, "{d:?}");
    assert!(
        r.localisation.accuracy().unwrap() >= MIN_LOCALISATION,
        "{:?}",
        r.localisation
    );
}

/// What the shipped model must keep reaching on these scenes. Measured: description 0.888 (71/80
/// validation) and 0.896 (43/48 independent), below the 0.95 the model is meant to reach (see the
/// model card's failure analysis); localisation 0.968 (149/154) and 0.959 (93/97). A seeded
/// random model of the same shape: description 0.20 (16/80), localisation 0.47 (73/154). The
/// previous release (stage 2i): 71/80 and 43/48, localisation 147/154 and 94/97.
const MIN_DESCRIPTION: f64 = 0.82;
const MIN_LOCALISATION: f64 = 0.93;

#[test]
fn embedded_scorer_reads_spatial_relations_that_clip_cannot() {
    let model = LoadedModel::load(&ModelSource::Embedded, &mut |_| {}).unwrap();
    let r = evaluate(&model, &synthetic(4243, Split::Validation, 200)).unwrap();
    let spatial = &r.families["spatial"];
    let (clip, dcsm) = (spatial["clip"], spatial["dcsm"]);
    eprintln!("spatial: clip {clip:?}, dcsm {dcsm:?}");
    assert!(dcsm.total >= 60, "{dcsm:?}");
    // Plain CLIP's pooled cosine is near chance on "A above B" vs "B above A"; the scorer reads
    // the relation off the dense map. Measured: CLIP 0.485 (49/101), the shipped scorer 0.941
    // (95/101; on the previous release 0.931); the goal of 0.95 is not met on every split yet
    // (model card).
    assert!(clip.accuracy().unwrap() < 0.7, "{clip:?}");
    assert!(dcsm.accuracy().unwrap() >= 0.88, "{dcsm:?}");
    assert!(
        dcsm.accuracy().unwrap() >= clip.accuracy().unwrap() + 0.30,
        "clip {clip:?}, dcsm {dcsm:?}"
    );
}
