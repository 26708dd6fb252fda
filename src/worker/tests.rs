//! The worker's own tests: supersession of queued scores, and recovery from a panicking job.

use super::*;

fn score(id: ImageId, generation: u64) -> Job {
    Job::Score {
        image: ImageRef {
            id,
            input: ImageInput::Path("x.png".into()),
        },
        prompts: vec!["a".into()],
        view: Default::default(),
        generation,
    }
}

#[test]
fn newer_scores_supersede_older_ones_per_image() {
    let mut q: VecDeque<Job> = [
        score(1, 1),
        score(2, 1),
        score(1, 2),
        Job::Forget { image_id: 3 },
        score(1, 3),
    ]
    .into_iter()
    .collect();
    drop_superseded(&mut q);
    let kept: Vec<(u64, u64)> = q
        .iter()
        .filter_map(|j| match j {
            Job::Score {
                image, generation, ..
            } => Some((image.id, *generation)),
            _ => None,
        })
        .collect();
    assert_eq!(kept, vec![(2, 1), (1, 3)]);
    assert_eq!(q.len(), 3);
}

/// Events up to and including the first that `stop` accepts.
fn until(worker: &Worker, stop: impl Fn(&Event) -> bool) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = worker
            .events()
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the worker answered");
        let done = stop(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

/// Here rather than in tests/worker.rs: the hook exists only in this crate's own test build,
/// so the integration tests need no second build of the crate with a test feature.
#[test]
fn a_panic_becomes_an_error_and_the_worker_keeps_serving() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity");
    let worker = Worker::spawn(|| {});
    worker.send(Job::LoadModel {
        source: crate::engine::ModelSource::Folder(fixtures.join("tiny_quick_gelu")),
    });
    worker.send(Job::Panic);
    let events = until(&worker, |e| matches!(e, Event::Error { .. }));
    let Some(Event::Error { message, .. }) = events.last() else {
        panic!("expected an error, got {events:?}")
    };
    assert!(message.contains("internal error"), "{message}");
    worker.send(Job::Score {
        image: ImageRef {
            id: 7,
            input: ImageInput::Path(fixtures.join("images/wide.png")),
        },
        prompts: vec!["still alive".into()],
        view: Default::default(),
        generation: 1,
    });
    let events = until(&worker, |e| matches!(e, Event::Results(_)));
    assert_eq!(events.len(), 2, "{events:?}"); // ImageReady, Results
    worker.shutdown();
}

#[test]
fn a_score_runs_before_queued_encodes_but_never_before_a_model_load() {
    let encode = |id| Job::EncodeImage {
        image: ImageRef {
            id,
            input: ImageInput::Path("x.png".into()),
        },
    };
    let load = Job::LoadModel {
        source: crate::engine::ModelSource::Embedded,
    };
    let mut q: VecDeque<Job> = [encode(1), encode(2), score(3, 1), load, score(4, 1)].into();
    let mut order = Vec::new();
    while let Some(job) = next_job(&mut q) {
        order.push(match job {
            Job::EncodeImage { image } => format!("encode {}", image.id),
            Job::Score { image, .. } => format!("score {}", image.id),
            Job::LoadModel { .. } => "load".into(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        order,
        ["score 3", "encode 1", "encode 2", "load", "score 4"],
        "the waiting score first; the one after the load waits for it"
    );
}
