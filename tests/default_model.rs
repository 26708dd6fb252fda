//! The embedded default model: loads through the engine, recognises objects where a random model
//! of the same shape cannot, and its shape-word maps peak on their objects.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use clipscope::eval::{evaluate, synthetic, SplitReport};
use clipscope::model::clip::Clip;
use clipscope::model::{LoadedModel, ModelSource};
use clipscope::world::Split;

fn report(model: &LoadedModel) -> SplitReport {
    evaluate(model, &synthetic(4242, Split::Validation, 80)).unwrap()
}

#[test]
fn embedded_model_describes_and_localises() {
    let trained = LoadedModel::load(&ModelSource::Embedded, &mut |_| {}).unwrap();
    assert_eq!(trained.grid(), (7, 7));
    let config = trained.config().clone();
    let random = Clip::new(
        &config,
        false,
        VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let random = LoadedModel::from_parts(random, "random").unwrap();
    let (t, r) = (report(&trained), report(&random));

    // Description: the truth among three captions; chance is a third.
    let td = t.families["description"]["clip"];
    let rd = r.families["description"]["clip"];
    assert!(td.total >= 60);
    assert!(td.accuracy().unwrap() >= 0.5, "trained description {td:?}");
    assert!(
        rd.accuracy().unwrap() < 0.45,
        "a random model should not reach this: {rd:?}"
    );

    // Localisation: any map tends to peak on *some* object against a plain background, so even a
    // random model scores about 55% here (measured), far above the 9/49 of a uniform peak. The
    // trained maps must peak on the named object far more often than that.
    let tl = t.localisation.accuracy().unwrap();
    let rl = r.localisation.accuracy().unwrap();
    assert!(tl >= 0.75, "trained localisation {:?}", t.localisation);
    assert!(tl >= rl + 0.2, "trained {tl:.3} vs random {rl:.3}");
}
