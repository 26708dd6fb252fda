//! The background thread that owns the model and answers jobs over crossbeam channels.

mod follow;
mod images;
pub mod protocol;
mod views;

use crossbeam_channel::{Receiver, Sender};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

pub use protocol::*;

use crate::engine::{elapsed_ms, EncodedImage, LoadedModel, ModelError, TextCache};
use crate::error::one_line;
use follow::{follow_up, ready_smartclip, FollowUp};
use images::ensure_encoded;

/// Longest side of the gallery's copy (its thumbnails are 104 points, twice that on HiDPI).
pub const THUMBNAIL_SIDE: u32 = 208;

/// The client's end: send jobs, receive events. Dropping it stops the worker after its
/// current job.
pub struct Worker {
    jobs: Sender<Job>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    /// Set when the client goes away: the worker finishes its current job and drops the rest.
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// Starts the worker thread; `notify` runs after every event (e.g. a repaint request).
    pub fn spawn(notify: impl Fn() + Send + 'static) -> Self {
        let (jobs, job_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("clipscope-worker".into())
            .spawn(move || {
                let out = Outbox {
                    tx: event_tx,
                    notify: Box::new(notify),
                };
                serve(&job_rx, &out, &stopped)
            })
            .ok();
        Self {
            jobs,
            events,
            thread,
            stop,
        }
    }

    /// Queues a job. Returns false if the worker is gone.
    pub fn send(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// The event channel (drain it once per frame).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Stops the worker and waits for it to finish its current job (queued jobs are dropped).
    pub fn shutdown(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Outbox {
    tx: Sender<Event>,
    notify: Box<dyn Fn() + Send>,
}

impl Outbox {
    fn send(&self, event: Event) {
        if self.tx.send(event).is_ok() {
            (self.notify)();
        }
    }

    fn error(&self, image_id: Option<ImageId>, generation: Option<u64>, message: String) {
        self.send(Event::Error {
            image_id,
            generation,
            message,
        });
    }
}

struct Cached {
    encoded: EncodedImage,
}

/// What the worker owns: the model and the caches of its encodings (the engine keeps none).
#[derive(Default)]
struct State {
    model: Option<LoadedModel>,
    cache: HashMap<ImageId, Cached>,
    /// Least recently used first.
    order: VecDeque<ImageId>,
    cache_bytes: usize,
    text: TextCache,
    /// The vision states of the last non-plain view.
    dense: Option<views::DenseEntry>,
    /// Results sent with SmartCLIP's verdicts still to come.
    follow_up: Option<FollowUp>,
}

impl State {
    fn forget_images(&mut self) {
        self.dense = None;
        self.cache.clear();
        self.order.clear();
        self.cache_bytes = 0;
    }

    fn forget_image(&mut self, id: ImageId) {
        if self.dense.as_ref().is_some_and(|d| d.image_id == id) {
            self.dense = None;
        }
        if let Some(c) = self.cache.remove(&id) {
            self.cache_bytes -= c.encoded.bytes();
        }
        self.order.retain(|i| *i != id);
    }
}

/// How often, at most, the worker hands freed memory back to the system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Returns the heap's free memory to the system, at most every `TRIM_EVERY`. glibc keeps what is
/// freed (evicted encodings, finished jobs' tensors) for reuse, so under long use the resident
/// set creeps up with fragmentation though the caches stay within their budgets.
fn release_freed_memory(last: &mut Instant) {
    if last.elapsed() < TRIM_EVERY {
        return;
    }
    *last = Instant::now();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only gives free pages back to the system; no live allocation moves.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The worker loop: take everything queued, drop superseded jobs, run the oldest survivor.
fn serve(jobs: &Receiver<Job>, out: &Outbox, stop: &AtomicBool) {
    let mut state = State::default();
    let mut pending: VecDeque<Job> = VecDeque::new();
    let mut trimmed = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        pending.extend(jobs.try_iter());
        if let Some(f) = state.follow_up.take() {
            // A newer request for the image brings its own SmartCLIP verdicts.
            let superseded = pending
                .iter()
                .any(|j| matches!(j, Job::Score { image, .. } if image.id == f.image.id));
            if !superseded {
                let outcome = catch_unwind(AssertUnwindSafe(|| follow_up(&mut state, f, out)));
                if outcome.is_err() {
                    tracing::warn!("SmartCLIP's follow-up panicked; its maps stand");
                }
            }
            continue;
        }
        if pending.is_empty() {
            match jobs.recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => return,
            }
        }
        pending.extend(jobs.try_iter());
        drop_superseded(&mut pending);
        let Some(job) = next_job(&mut pending) else {
            continue;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| handle(&mut state, job.clone(), out)));
        if pending.is_empty() && jobs.is_empty() {
            release_freed_memory(&mut trimmed);
        }
        if let Err(panic) = outcome {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let (image_id, generation) = match &job {
                Job::Score {
                    image, generation, ..
                } => (Some(image.id), Some(*generation)),
                Job::EncodeImage { image } => (Some(image.id), None),
                _ => (None, None),
            };
            out.error(
                image_id,
                generation,
                format!("internal error in the worker: {what} (the worker keeps running)"),
            );
        }
    }
}

/// The job to run next: the first `Score` queued before any `LoadModel` (a person is waiting for
/// its maps, while encoding the rest of the gallery can wait), else the oldest job. A `Score`
/// never overtakes a `LoadModel`: it must run on the model asked for before it.
fn next_job(pending: &mut VecDeque<Job>) -> Option<Job> {
    let score = pending
        .iter()
        .take_while(|j| !matches!(j, Job::LoadModel { .. }))
        .position(|j| matches!(j, Job::Score { .. }));
    match score {
        Some(i) => pending.remove(i),
        None => pending.pop_front(),
    }
}

/// Keeps only the newest `Score` per image and the newest `LoadModel`.
fn drop_superseded(pending: &mut VecDeque<Job>) {
    let mut newest_score: HashMap<ImageId, usize> = HashMap::new();
    let mut newest_load = None;
    for (i, job) in pending.iter().enumerate() {
        match job {
            Job::Score { image, .. } => {
                newest_score.insert(image.id, i);
            }
            Job::LoadModel { .. } => newest_load = Some(i),
            _ => {}
        }
    }
    let mut i = 0;
    pending.retain(|job| {
        let keep = match job {
            Job::Score { image, .. } => newest_score.get(&image.id) == Some(&i),
            Job::LoadModel { .. } => newest_load == Some(i),
            _ => true,
        };
        i += 1;
        keep
    });
}

fn handle(state: &mut State, job: Job, out: &Outbox) {
    match job {
        Job::LoadModel { source } => {
            let start = Instant::now();
            // The old model and its encodings go first, so two models never share memory.
            state.model = None;
            state.forget_images();
            state.text.clear();
            match LoadedModel::load(&source, &mut |p| out.send(Event::Progress(p))) {
                Ok(model) => {
                    tracing::info!("loaded {} in {:.0} ms", model.name(), elapsed_ms(start));
                    let c = model.config();
                    out.send(Event::ModelReady(ModelInfo {
                        source: source.clone(),
                        name: model.name().to_string(),
                        family: model.family(),
                        device: model.device_name(),
                        grid: model.grid(),
                        image_size: c.vision.image_size,
                        projection_dim: c.projection_dim,
                        context: c.text.max_position_embeddings,
                        vision_layers: c.vision.num_hidden_layers,
                        pipeline: model.pipeline(),
                        scorer: model.scorers().first().map(|s| s.label()),
                        smartclip: model.smartclip().is_some(),
                        load_ms: elapsed_ms(start),
                    }));
                    state.model = Some(model);
                }
                Err(e) => out.send(Event::ModelFailed {
                    message: format!("could not load the model {source}: {}", one_line(&e)),
                    source,
                }),
            }
        }
        Job::EncodeImage { image } => {
            if let Err(e) = ensure_encoded(state, &image, out) {
                out.error(Some(image.id), None, one_line(&e));
            }
        }
        Job::Score {
            image,
            prompts,
            generation,
            view,
        } => {
            let result = ensure_encoded(state, &image, out).and_then(|cached| {
                let start = Instant::now();
                let model = state.model.as_ref().ok_or_else(no_model)?;
                let entry = state.cache.get(&image.id).ok_or_else(no_model)?;
                let (encoded, pending) =
                    model.encode_prompts_cached_quick(&prompts, &mut state.text)?;
                let mut scores = model.score(&entry.encoded, &encoded)?;
                if pending {
                    ready_smartclip(
                        model,
                        &entry.encoded,
                        &prompts,
                        &mut state.text,
                        &mut scores,
                    )?;
                }
                let (mut map_grid, mut map_region) = views::plain(&entry.encoded);
                if !view.is_plain() {
                    let maps = views::apply(
                        model,
                        &mut state.dense,
                        &image,
                        &view,
                        &encoded,
                        &mut scores,
                    )?;
                    (map_grid, map_region) = (maps.grid, maps.region);
                }
                Ok(Results {
                    image_id: image.id,
                    generation,
                    prompts: scores,
                    image_cached: cached,
                    score_ms: elapsed_ms(start),
                    view,
                    map_grid,
                    map_region,
                    verdicts_pending: pending,
                })
            });
            match result {
                Ok(r) => {
                    if r.verdicts_pending {
                        state.follow_up = Some(FollowUp {
                            image: image.clone(),
                            prompts,
                            results: r.clone(),
                        });
                    }
                    tracing::debug!(
                        image = r.image_id,
                        prompts = r.prompts.len(),
                        cached = r.image_cached,
                        "scored in {:.1} ms",
                        r.score_ms
                    );
                    out.send(Event::Results(r))
                }
                Err(e) => out.error(Some(image.id), Some(generation), one_line(&e)),
            }
        }
        Job::Forget { image_id } => state.forget_image(image_id),
        #[cfg(any(test, feature = "test-hooks"))]
        Job::Panic => panic!("a test asked the worker to panic"),
    }
}

fn no_model() -> ModelError {
    ModelError::Config("no model is loaded".into())
}

#[cfg(test)]
mod tests;
