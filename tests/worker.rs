//! The worker thread on a real (tiny, random) model: cache, supersession, panics, errors.

mod common;
use clipscope::engine::{LoadedModel, ModelSource};
use clipscope::worker::{Event, ImageInput, ImageRef, Job, Worker};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn fixture(path: &str) -> PathBuf {
    common::parity(path)
}

fn model() -> Job {
    Job::LoadModel {
        source: ModelSource::Folder(fixture("tiny_quick_gelu")),
    }
}

fn image(id: u64) -> ImageRef {
    ImageRef {
        id,
        input: ImageInput::Path(fixture("images/wide.png")),
    }
}

fn score(id: u64, generation: u64, prompt: &str) -> Job {
    Job::Score {
        image: image(id),
        prompts: vec![prompt.into(), "a blue square".into()],
        generation,
        view: Default::default(),
    }
}

fn next(worker: &Worker) -> Event {
    worker
        .events()
        .recv_timeout(Duration::from_secs(60))
        .expect("the worker answered")
}

/// Events up to and including the first that `stop` accepts.
fn until(worker: &Worker, stop: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = next(worker);
        let done = stop(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

fn is_results(e: &Event) -> bool {
    matches!(e, Event::Results(_))
}

#[test]
fn second_score_on_the_same_image_uses_the_cache() {
    let worker = Worker::spawn(|| {});
    worker.send(model());
    worker.send(score(1, 1, "a red circle"));
    let first = until(&worker, is_results);
    assert!(matches!(first[0], Event::ModelReady(_)), "{first:?}");
    assert_eq!(
        first
            .iter()
            .filter(|e| matches!(e, Event::ImageReady(_)))
            .count(),
        1
    );
    let Some(Event::Results(r)) = first.last() else {
        panic!()
    };
    assert!(!r.image_cached);
    assert_eq!(r.prompts.len(), 2);

    worker.send(score(1, 2, "a green star"));
    let second = until(&worker, is_results);
    assert_eq!(second.len(), 1, "no ImageReady the second time: {second:?}");
    let Event::Results(r) = &second[0] else {
        panic!()
    };
    assert!(r.image_cached, "the image was encoded again");
    assert_eq!(r.generation, 2);
    worker.shutdown();
}

#[test]
fn newer_requests_supersede_queued_ones() {
    let worker = Worker::spawn(|| {});
    // All queued while the model loads: only the newest score for image 1 may run.
    worker.send(model());
    for generation in 1..=5 {
        worker.send(score(1, generation, &format!("prompt number {generation}")));
    }
    worker.send(score(2, 1, "another image"));
    let mut generations = Vec::new();
    while generations.len() < 2 {
        if let Event::Results(r) = next(&worker) {
            generations.push((r.image_id, r.generation));
        }
    }
    assert_eq!(generations, vec![(1, 5), (2, 1)]);
    assert!(
        worker
            .events()
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "stale results came"
    );
    worker.shutdown();
}

#[test]
fn missing_folder_and_corrupt_weights_are_reported() {
    let worker = Worker::spawn(|| {});
    worker.send(Job::LoadModel {
        source: ModelSource::Folder("/no/such/model".into()),
    });
    let Event::ModelFailed { message, source } = next(&worker) else {
        panic!("expected an error")
    };
    assert_eq!(source, ModelSource::Folder("/no/such/model".into()));
    assert!(
        message.contains("/no/such/model") && message.contains("does not exist"),
        "{message}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("tiny_quick_gelu/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let weights = std::fs::read(fixture("tiny_quick_gelu/model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    worker.send(Job::LoadModel {
        source: ModelSource::Folder(dir.path().to_path_buf()),
    });
    let Event::ModelFailed { message, .. } = next(&worker) else {
        panic!("expected an error")
    };
    assert!(message.contains("model.safetensors"), "{message}");

    // Scoring without a model is an error too, not a hang.
    worker.send(score(1, 1, "anything"));
    let Event::Error {
        message,
        generation,
        ..
    } = next(&worker)
    else {
        panic!("expected an error")
    };
    assert!(message.contains("no model"), "{message}");
    assert_eq!(generation, Some(1));
    worker.shutdown();
}

#[test]
fn bad_images_are_errors_for_that_image_only() {
    let worker = Worker::spawn(|| {});
    worker.send(model());
    let bad = ImageRef {
        id: 9,
        input: ImageInput::Bytes(Arc::new(b"not an image at all".to_vec())),
    };
    worker.send(Job::Score {
        image: bad,
        prompts: vec!["x".into()],
        generation: 1,
        view: Default::default(),
    });
    let events = until(&worker, |e| matches!(e, Event::Error { .. }));
    let Some(Event::Error {
        image_id, message, ..
    }) = events.last()
    else {
        panic!()
    };
    assert_eq!(*image_id, Some(9));
    assert!(message.contains("not an image"), "{message}");
    worker.send(score(1, 1, "fine"));
    until(&worker, is_results);
    worker.shutdown();
}

#[test]
fn model_swap_with_jobs_queued_and_notify_per_event() {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let worker = Worker::spawn(move || {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    worker.send(model());
    worker.send(score(1, 1, "first model"));
    worker.send(Job::LoadModel {
        source: ModelSource::Folder(fixture("tiny_gelu")),
    });
    worker.send(score(1, 2, "second model"));
    let mut events = 0;
    let results = loop {
        events += 1;
        if let Event::Results(r) = next(&worker) {
            if r.generation == 2 {
                break r;
            }
        }
    };
    // The second model has a 6×6 grid: the image was encoded again under it.
    assert_eq!(results.prompts[0].dcsm.rows, 1 + 36);
    assert!(!results.image_cached);
    assert_eq!(count.load(Ordering::SeqCst), events);
    worker.shutdown();
}

#[test]
fn a_thousand_prompts_at_once_and_mixed_scripts() {
    let worker = Worker::spawn(|| {});
    worker.send(model());
    let mut prompts: Vec<String> = (0..1000)
        .map(|i| format!("prompt number {i} with a red circle"))
        .collect();
    prompts[7] = "un chien 🐶 犬 собака 😀".into();
    worker.send(Job::Score {
        image: image(1),
        prompts,
        generation: 1,
        view: Default::default(),
    });
    let events = until(&worker, is_results);
    let Some(Event::Results(r)) = events.last() else {
        panic!()
    };
    assert_eq!(r.prompts.len(), 1000);
    assert!(r.prompts[7].tokenized.ids.len() > 5);
    let total: f32 = r.prompts.iter().map(|p| p.clip_prob).sum();
    assert!((total - 1.0).abs() < 1e-3);
    // Batching must not change a prompt's numbers: prompt 900 scores the same when a fresh
    // engine (no cache shared with the worker) encodes it alone.
    let engine = LoadedModel::from_folder(&fixture("tiny_quick_gelu"), "tiny").unwrap();
    let decoded = clipscope::io::preprocess::decode_file(&fixture("images/wide.png")).unwrap();
    let encoded = engine.encode_decoded(&decoded).unwrap();
    let alone = engine
        .score(
            &encoded,
            &engine
                .encode_prompts(&[r.prompts[900].tokenized.text.clone()])
                .unwrap(),
        )
        .unwrap();
    let d = r.prompts[900]
        .dcsm
        .data
        .iter()
        .zip(&alone[0].dcsm.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert_eq!(r.prompts[900].dcsm.data.len(), alone[0].dcsm.data.len());
    assert!(d < 1e-5, "{d}");
    worker.shutdown();
}

#[test]
fn closing_while_busy_stops_promptly() {
    let worker = Worker::spawn(|| {});
    worker.send(model());
    // Forty different images: none supersedes another.
    for id in 0..40 {
        worker.send(score(id, 1, "busy"));
    }
    let events = worker.events().clone();
    let start = std::time::Instant::now();
    worker.shutdown();
    let results = events
        .try_iter()
        .filter(|e| matches!(e, Event::Results(_)))
        .count();
    assert!(
        results < 40,
        "queued jobs were dropped, not all run ({results} ran)"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn maps_come_before_the_verdicts_which_follow_for_the_same_request() {
    let worker = Worker::spawn(|| {});
    worker.send(Job::LoadModel {
        source: ModelSource::Embedded,
    });
    worker.send(score(1, 1, "a red circle"));
    let events = until(&worker, is_results);
    let Some(Event::Results(quick)) = events.last() else {
        panic!()
    };
    assert!(quick.verdicts_pending);
    assert!(quick
        .prompts
        .iter()
        .all(|p| p.smartclip.is_none() && p.dcsm_scores.is_empty()));
    let Event::Results(full) = next(&worker) else {
        panic!("the verdicts' follow-up did not come next")
    };
    assert_eq!((full.image_id, full.generation), (1, 1));
    assert!(!full.verdicts_pending);
    // The same maps, now with the scorer's and SmartCLIP's verdicts, as the engine gives them
    // in one call.
    let engine = LoadedModel::embedded().unwrap();
    let decoded = clipscope::io::preprocess::decode_file(&fixture("images/wide.png")).unwrap();
    let encoded = engine.encode_decoded(&decoded).unwrap();
    let prompts = ["a red circle".to_string(), "a blue square".to_string()];
    let direct = engine
        .score(&encoded, &engine.encode_prompts(&prompts).unwrap())
        .unwrap();
    for ((q, f), d) in quick.prompts.iter().zip(&full.prompts).zip(&direct) {
        assert_eq!(q.dcsm.data, f.dcsm.data);
        let (fs, ds) = (f.dcsm_score().unwrap(), d.dcsm_score().unwrap());
        assert!((fs - ds).abs() < 1e-4, "scorer {fs} against {ds}");
        assert_eq!(f.functional.len(), d.functional.len());
        let (f, d) = (f.smartclip.as_ref().unwrap(), d.smartclip.as_ref().unwrap());
        assert!(
            (f.score - d.score).abs() < 1e-5,
            "{} against {}",
            f.score,
            d.score
        );
        assert_eq!(f.mask_kept, d.mask_kept);
    }
    // An edit: the unchanged prompt's verdict comes with the maps, the edited one's after.
    worker.send(score(1, 2, "a green star"));
    let Event::Results(edited) = next(&worker) else {
        panic!()
    };
    assert!(edited.verdicts_pending);
    assert!(edited.prompts[0].smartclip.is_none());
    // The scorer z-scores every prompt's map together: no verdict of it stands after an edit.
    assert!(edited.prompts.iter().all(|p| p.dcsm_scores.is_empty()));
    let kept = edited.prompts[1].smartclip.as_ref().unwrap();
    let before = full.prompts[1].smartclip.as_ref().unwrap();
    assert_eq!(
        (kept.score, kept.mask_kept),
        (before.score, before.mask_kept)
    );
    let Event::Results(filled) = next(&worker) else {
        panic!()
    };
    assert_eq!(filled.generation, 2);
    assert!(!filled.verdicts_pending && filled.prompts[0].smartclip.is_some());
    #[cfg(feature = "gui")]
    the_app_shows_earlier_verdicts_until_an_edits_own_come(&full, &edited, &filled);
    let edited_prompts = ["a green star".to_string(), prompts[1].clone()];
    let direct = engine
        .score(&encoded, &engine.encode_prompts(&edited_prompts).unwrap())
        .unwrap();
    for (f, d) in filled.prompts.iter().zip(&direct) {
        let (f, d) = (f.dcsm_score().unwrap(), d.dcsm_score().unwrap());
        assert!((f - d).abs() < 1e-4, "scorer {f} against {d}");
    }
    // Prompts already through SmartCLIP's pass need no follow-up.
    worker.send(Job::Score {
        image: image(1),
        prompts: prompts.to_vec(),
        generation: 3,
        view: Default::default(),
    });
    let Event::Results(again) = next(&worker) else {
        panic!()
    };
    assert!(!again.verdicts_pending && again.prompts.iter().all(|p| p.smartclip.is_some()));
    assert!(
        worker
            .events()
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "a follow-up came for nothing"
    );
    worker.shutdown();
}

/// The app shows each slot's earlier verdicts while an edit's own are on their way (`full` then
/// `edited`, pending), and its own once they come (`filled`).
#[cfg(feature = "gui")]
fn the_app_shows_earlier_verdicts_until_an_edits_own_come(
    full: &clipscope::worker::Results,
    edited: &clipscope::worker::Results,
    filled: &clipscope::worker::Results,
) {
    use clipscope::app::state::Shown;
    let verdicts = |s: &Shown, i: usize| {
        let v = s.verdicts_of(i).unwrap();
        (v.dcsm, v.smartclip)
    };
    let before = Shown::new(full.clone(), vec![0, 1], None);
    let waiting = Shown::new(edited.clone(), vec![0, 1], Some(&before));
    for i in 0..2 {
        assert_eq!(verdicts(&waiting, i).0, full.prompts[i].dcsm_score());
    }
    let own = edited.prompts[1].smartclip.as_ref().map(|s| s.score);
    let earlier = full.prompts[0].smartclip.as_ref().map(|s| s.score);
    assert_eq!(verdicts(&waiting, 1).1, own);
    assert_eq!(verdicts(&waiting, 0).1, earlier);
    let done = Shown::new(filled.clone(), vec![0, 1], Some(&waiting));
    assert!(done.stale.is_empty());
    assert_eq!(verdicts(&done, 0).0, filled.prompts[0].dcsm_score());
    assert_ne!(verdicts(&done, 0).0, verdicts(&waiting, 0).0);
}
