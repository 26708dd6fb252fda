//! The embedded default model: loads through the engine, recognises objects far above chance,
//! and its shape-word maps peak on their objects.

use clipscope::eval::{evaluate, synthetic};
use clipscope::model::{LoadedModel, ModelSource};
use clipscope::world::Split;

#[test]
fn embedded_model_describes_and_localises() {
    let model = LoadedModel::load(&ModelSource::Embedded, &mut |_| {}).unwrap();
    assert_eq!(model.grid(), (7, 7));
    let report = evaluate(&model, &synthetic(4242, Split::Validation, 80)).unwrap();
    let description = report.families["description"]["clip"];
    // Three captions per probe: a model that cannot see is right a third of the time.
    let accuracy = description.accuracy().unwrap();
    assert!(
        description.total >= 60 && accuracy >= 0.6,
        "description {description:?}"
    );
    // A peak within one patch of the object by chance is about 9/49 ≈ 18% on a 7×7 grid.
    let localisation = report.localisation.accuracy().unwrap();
    assert!(
        localisation >= 0.75,
        "localisation {:?}",
        report.localisation
    );
}
