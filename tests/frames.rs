//! The frame that sends a prompt edit to the worker draws its maps, when the worker is quick.
#![cfg(feature = "gui")]

mod common;
#[path = "common/ui.rs"]
mod ui;

use std::time::Duration;
use ui::{harness, pass_debounce, H};

/// Edits prompt 1 and steps frames until the debounce is due, ending on the frame that sends.
fn edit_and_send(h: &mut H, text: &str) -> u64 {
    let before = h.state().current_shown().unwrap().results.generation;
    h.state_mut().prompts[0] = text.into();
    h.state_mut().mark_dirty();
    h.step();
    assert!(h.state().debouncing(), "the edit waits for the debounce");
    pass_debounce();
    h.step();
    assert!(!h.state().debouncing(), "the request went out");
    before
}

#[test]
fn a_quick_answer_is_drawn_in_the_frame_that_asked_for_it() {
    let mut h = harness(&["a red circle", "a blue square"], &["wide.png"]);
    // The tiny model answers in well under a millisecond; a long wait keeps a loaded test
    // machine from making this flaky, since it only bounds the wait.
    h.state_mut().same_frame_wait = Duration::from_secs(30);
    let timed = h.state().timings.edits.len();
    let before = edit_and_send(&mut h, "a green star");
    assert!(
        !h.state().busy(),
        "nothing is left in flight after the frame"
    );
    let shown = &h.state().current_shown().unwrap().results;
    assert!(shown.generation > before);
    assert_eq!(shown.prompts[0].tokenized.text, "a green star");
    assert_eq!(
        h.state().timings.edits.len(),
        timed + 1,
        "the edit was timed"
    );
}

#[test]
fn a_slow_model_does_not_hold_the_frame() {
    let mut h = harness(&["a red circle", "a blue square"], &["wide.png"]);
    h.state_mut().same_frame_wait = Duration::from_secs(30);
    // The last answer took longer than the wait allows: the frame sends and goes on drawing.
    h.state_mut().timings.score_ms = Some(60_000.0);
    let before = edit_and_send(&mut h, "a green star");
    assert!(h.state().busy(), "the answer comes in a later frame");
    assert_eq!(
        h.state().current_shown().unwrap().results.generation,
        before
    );
    ui::settle(&mut h);
    assert_eq!(
        h.state().score_of(0).unwrap().tokenized.text,
        "a green star"
    );
}
