//! The app's end of the worker, without egui: the debounce, the scoring requests in flight and
//! which answer is still wanted. Time comes from a `Clock`, so tests step it instead of sleeping.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::state::InFlight;
use crate::engine::MapView;
use crate::worker::{Event, ImageRef, Job, Worker};

/// How long the prompts must rest before they are scored.
pub const DEBOUNCE: Duration = Duration::from_millis(12);
/// Requests remembered at most (older ones are never shown).
const MAX_IN_FLIGHT: usize = 16;

/// Where the client reads the time.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.0.lock().map_or_else(|_| Instant::now(), |t| *t)
    }
}

/// What the debounce says this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Debounce {
    /// Nothing changed since the last request.
    Idle,
    /// Changed, but still settling: ask again after this long.
    Wait(Duration),
    /// Settled: score now.
    Due,
}

/// The worker handle, the requests in flight and the debounce.
pub struct EngineClient {
    worker: Worker,
    clock: Box<dyn Clock>,
    sent: VecDeque<InFlight>,
    dirty_since: Option<Instant>,
    next_generation: u64,
}

impl EngineClient {
    pub fn new(worker: Worker, clock: Box<dyn Clock>) -> Self {
        Self {
            worker,
            clock,
            sent: VecDeque::new(),
            dirty_since: None,
            next_generation: 0,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Queues a job other than scoring (loading, encoding, forgetting).
    pub fn send(&self, job: Job) {
        self.worker.send(job);
    }

    /// The next event from the worker, if one is waiting.
    pub fn try_event(&self) -> Option<Event> {
        self.worker.events().try_recv().ok()
    }

    /// Waits up to `timeout` for the next event from the worker.
    pub fn wait_event(&self, timeout: Duration) -> Option<Event> {
        self.worker.events().recv_timeout(timeout).ok()
    }

    /// Whether a change is waiting for the debounce (no request has gone out for it yet).
    pub fn debouncing(&self) -> bool {
        self.dirty_since.is_some()
    }

    /// Prompts or the image changed: score again once they rest for `DEBOUNCE`.
    pub fn mark_dirty(&mut self) {
        self.dirty_since = Some(self.clock.now());
    }

    /// Whether an answer to a request sent is still to come.
    pub fn awaiting(&self) -> bool {
        !self.sent.is_empty()
    }

    /// Whether a change is waiting for the debounce or an answer is outstanding.
    pub fn busy(&self) -> bool {
        self.awaiting() || self.dirty_since.is_some()
    }

    /// Where the debounce stands; `Due` clears it (the caller scores now).
    pub fn debounce(&mut self) -> Debounce {
        let Some(since) = self.dirty_since else {
            return Debounce::Idle;
        };
        let waited = self.clock.now().saturating_duration_since(since);
        if waited >= DEBOUNCE {
            self.dirty_since = None;
            Debounce::Due
        } else {
            Debounce::Wait(DEBOUNCE - waited)
        }
    }

    /// Sends a scoring request; `prompt_index` maps its prompts back to the app's list.
    pub fn score(
        &mut self,
        image: ImageRef,
        prompts: Vec<String>,
        prompt_index: Vec<usize>,
        view: MapView,
    ) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let image_id = image.id;
        self.worker.send(Job::Score {
            image,
            prompts,
            generation,
            view,
        });
        self.sent.push_back(InFlight {
            generation,
            image_id,
            prompt_index,
            edited_at: self.clock.now(),
        });
        while self.sent.len() > MAX_IN_FLIGHT {
            self.sent.pop_front();
        }
    }

    /// The request an answer of `generation` belongs to, if it is still wanted; every older
    /// request is dropped (its answer would never be shown).
    pub fn answered(&mut self, generation: u64) -> Option<InFlight> {
        let pos = self.sent.iter().position(|s| s.generation == generation)?;
        let request = self.sent.remove(pos)?;
        self.sent.retain(|s| s.generation > generation);
        Some(request)
    }

    /// A request that failed: nothing more will come for it, nor for any older one (answers come
    /// in order; an older request the worker dropped as superseded would otherwise wait forever).
    pub fn failed(&mut self, generation: u64) {
        self.sent.retain(|s| s.generation > generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> (EngineClient, ManualClock) {
        let clock = ManualClock::default();
        let client = EngineClient::new(Worker::spawn(|| {}), Box::new(clock.clone()));
        (client, clock)
    }

    fn image() -> ImageRef {
        ImageRef {
            id: 1,
            input: crate::worker::ImageInput::Bytes(Arc::new(Vec::new())),
        }
    }

    #[test]
    fn the_debounce_waits_for_the_prompts_to_rest() {
        let (mut c, clock) = client();
        assert_eq!(c.debounce(), Debounce::Idle);
        c.mark_dirty();
        clock.advance(Duration::from_millis(5));
        assert_eq!(
            c.debounce(),
            Debounce::Wait(DEBOUNCE - Duration::from_millis(5))
        );
        // Typing again restarts the wait.
        c.mark_dirty();
        clock.advance(DEBOUNCE - Duration::from_millis(1));
        assert!(matches!(c.debounce(), Debounce::Wait(_)));
        clock.advance(Duration::from_millis(1));
        assert_eq!(c.debounce(), Debounce::Due);
        assert_eq!(c.debounce(), Debounce::Idle, "Due clears the change");
        assert!(!c.busy());
    }

    #[test]
    fn only_answers_still_wanted_are_taken_and_older_requests_drop() {
        let (mut c, _) = client();
        for _ in 0..3 {
            c.score(
                image(),
                vec!["a red circle".into()],
                vec![0],
                MapView::default(),
            );
        }
        assert!(c.busy());
        // The answer to the second request makes the first one moot.
        assert_eq!(c.answered(2).map(|r| r.generation), Some(2));
        assert!(c.answered(1).is_none());
        assert!(c.busy(), "the third is still out");
        c.failed(3);
        assert!(!c.busy());
        assert!(c.answered(3).is_none());
    }

    #[test]
    fn at_most_sixteen_requests_are_remembered() {
        let (mut c, _) = client();
        for _ in 0..20 {
            c.score(image(), vec!["x".into()], vec![0], MapView::default());
        }
        assert!(c.answered(4).is_none(), "the oldest were forgotten");
        assert!(c.answered(5).is_some());
    }
}
