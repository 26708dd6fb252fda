//! Tests of the text cache: eviction, model binding, and parts left for later filled in as one
//! pass has them.

use super::*;
use crate::clip::max_diff;
use crate::engine::LoadedModel;

#[test]
fn the_least_recently_used_prompts_are_evicted_never_the_ones_in_use() {
    let model = LoadedModel::embedded().unwrap();
    let kept = vec!["a red circle".to_string()];
    let one = model.encode_prompts(&kept).unwrap();
    let mut probe = TextCache::default();
    probe.bind(1);
    probe.insert(&kept, &one).unwrap();
    // Room for about ten prompts.
    let mut cache = TextCache::new(probe.bytes() * 10);
    model.encode_prompts_cached(&kept, &mut cache).unwrap();
    for i in 0..40 {
        let batch = vec![format!("a blue square {i}"), kept[0].clone()];
        let enc = model.encode_prompts_cached(&batch, &mut cache).unwrap();
        assert_eq!(enc.tokens.len(), 2);
        assert!(
            cache.bytes() <= probe.bytes() * 12,
            "{} bytes",
            cache.bytes()
        );
    }
    // The prompt asked for on every call survived; the oldest of the others did not.
    assert!(cache.contains(&kept[0]));
    assert!(!cache.contains("a blue square 0"));
    assert!(cache.contains("a blue square 39"));
    assert!(cache.len() <= 12, "{} prompts kept", cache.len());
    // What comes back equals a fresh pass.
    let b = model.encode_prompts_cached(&kept, &mut cache).unwrap();
    let fresh = model.encode_prompts(&kept).unwrap();
    assert!(max_diff(&b.tokens[0], &fresh.tokens[0]) < 1e-6);
    assert_eq!(one.tokenized[0], b.tokenized[0]);
    assert_eq!(
        b.columns.unwrap().normalized.dims(),
        fresh.columns.unwrap().normalized.dims()
    );
}

#[test]
fn a_cache_of_another_model_is_emptied_before_use() {
    let mut model = LoadedModel::embedded().unwrap();
    let prompts = vec!["a red circle".to_string()];
    let mut cache = TextCache::default();
    let with_heads = model.encode_prompts_cached(&prompts, &mut cache).unwrap();
    assert!(with_heads.columns.is_some());
    model.take_scorers();
    let without = model.encode_prompts_cached(&prompts, &mut cache).unwrap();
    assert!(
        without.columns.is_none(),
        "stale scorer columns were served"
    );
}

#[test]
fn scorer_columns_left_for_later_are_filled_in_as_an_unbroken_encoding_has_them() {
    let model = LoadedModel::embedded().unwrap();
    assert!(!model.scorers().is_empty());
    // One prompt that fits the scorer's 30 columns, one the scorer reads truncated.
    let long = "a red circle above a blue square and a small green star left of a big \
                yellow cross and no purple triangle below an orange circle beside a red \
                square";
    let prompts: Vec<String> = ["a red circle above a blue square", long]
        .map(String::from)
        .into();
    let whole = model.encode_prompts(&prompts).unwrap();
    let mut cache = TextCache::default();
    let (quick, pending) = model
        .encode_prompts_cached_quick(&prompts, &mut cache)
        .unwrap();
    assert!(pending && quick.columns.is_none());
    assert_eq!(cache.lacking(&prompts, Part::Columns).0.len(), 2);
    // The maps' tokens need no scorer padding: the same rows as the padded pass.
    for (q, w) in quick.tokens.iter().zip(&whole.tokens) {
        assert!(max_diff(q, w) < 1e-5);
    }
    assert!(cache.kept(&prompts[0]).is_some());
    let done = model.encode_prompts_cached(&prompts, &mut cache).unwrap();
    // The kept keys and values are gone and the columns counted: the bytes of a cache
    // filled in one pass.
    assert!(cache.kept(&prompts[0]).is_none());
    let mut direct = TextCache::default();
    model.encode_prompts_cached(&prompts, &mut direct).unwrap();
    assert_eq!(cache.bytes(), direct.bytes());
    let (a, b) = (whole.columns.unwrap(), done.columns.unwrap());
    assert_eq!(a.tokenized, b.tokenized);
    assert_eq!(a.word_starts, b.word_starts);
    assert!(max_diff(&a.normalized, &b.normalized) < 1e-5);
    assert_eq!(cache.lacking(&prompts, Part::Columns).0.len(), 0);
}

#[test]
fn smartclip_left_for_later_is_filled_in_as_an_unbroken_encoding_has_it() {
    let model = LoadedModel::embedded().unwrap();
    assert!(model.smartclip().is_some());
    let prompts: Vec<String> = ["a red circle", "a blue star", "a red circle"]
        .map(String::from)
        .into();
    let whole = model.encode_prompts(&prompts).unwrap();
    let mut cache = TextCache::default();
    let (quick, pending) = model
        .encode_prompts_cached_quick(&prompts, &mut cache)
        .unwrap();
    assert!(pending && quick.smart.is_none());
    let done = model.encode_prompts_cached(&prompts, &mut cache).unwrap();
    let mut direct = TextCache::default();
    model.encode_prompts_cached(&prompts, &mut direct).unwrap();
    assert_eq!(
        cache.bytes(),
        direct.bytes(),
        "SmartCLIP's part is not counted"
    );
    let (a, b) = (whole.smart.unwrap(), done.smart.unwrap());
    assert!(max_diff(&a.logits, &b.logits) < 1e-5);
    assert!(max_diff(&a.texts, &b.texts) < 1e-5);
    // Once complete, a quick call has nothing left to do.
    let (again, pending) = model
        .encode_prompts_cached_quick(&prompts, &mut cache)
        .unwrap();
    assert!(!pending && again.smart.is_some());
    assert_eq!(cache.lacking(&prompts, Part::Smart).0.len(), 0);
}
