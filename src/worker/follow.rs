//! SmartCLIP's verdicts that follow the maps: results sent before SmartCLIP's full-context text
//! pass, and the same results sent again with every verdict.

use std::time::Instant;

use super::protocol::{ImageRef, Results};
use super::{one_line, Event, Outbox, State};
use crate::engine::{elapsed_ms, EncodedImage, LoadedModel, ModelError, TextCache};

/// The second half of a `Score` answered without SmartCLIP: its prompts and what was sent.
pub(super) struct FollowUp {
    pub(super) image: ImageRef,
    pub(super) prompts: Vec<String>,
    pub(super) results: Results,
}

/// Fills in, on results sent before SmartCLIP's pass, the verdicts of the prompts whose
/// SmartCLIP part is cached already (no text pass runs): after an edit only the edited prompt
/// waits for the follow-up.
pub(super) fn ready_smartclip(
    model: &LoadedModel,
    image: &EncodedImage,
    prompts: &[String],
    text: &mut TextCache,
    scores: &mut [crate::engine::PromptScore],
) -> Result<(), ModelError> {
    let (lacking, _) = text.lacking_smart(prompts);
    let ready: Vec<usize> = (0..prompts.len())
        .filter(|&i| !lacking.contains(&prompts[i]))
        .collect();
    if ready.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = ready.iter().map(|&i| prompts[i].clone()).collect();
    let encoded = model.encode_prompts_cached(&names, text)?;
    if let Some(verdicts) = model.smartclip_scores(image, &encoded)? {
        for (&i, v) in ready.iter().zip(verdicts) {
            scores[i].smartclip = Some(v);
        }
    }
    Ok(())
}

/// Sends `f`'s results again with SmartCLIP's verdicts, after its full-context text pass.
pub(super) fn follow_up(state: &mut State, f: FollowUp, out: &Outbox) {
    let FollowUp {
        image,
        prompts,
        mut results,
    } = f;
    let start = Instant::now();
    // The image may have been forgotten since: then nobody waits for its verdicts.
    let (Some(model), Some(entry)) = (state.model.as_ref(), state.cache.get(&image.id)) else {
        return;
    };
    let verdicts = model
        .encode_prompts_cached(&prompts, &mut state.text)
        .and_then(|encoded| model.smartclip_scores(&entry.encoded, &encoded));
    match verdicts {
        Ok(Some(v)) => {
            for (s, v) in results.prompts.iter_mut().zip(v) {
                s.smartclip = Some(v);
            }
            results.smartclip_pending = false;
            tracing::debug!(image = image.id, "SmartCLIP in {:.1} ms", elapsed_ms(start));
            out.send(Event::Results(results));
        }
        Ok(None) => {}
        Err(e) => out.error(Some(image.id), Some(results.generation), one_line(&e)),
    }
}
