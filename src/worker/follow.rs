//! The verdicts that follow the maps: results sent before the DCSM scorers' columns and
//! SmartCLIP's full-context text pass, and the same results sent again with every verdict.

use std::time::Instant;

use super::protocol::{ImageRef, Results};
use super::{one_line, Event, Outbox, State};
use crate::engine::{
    elapsed_ms, EncodedImage, LoadedModel, ModelError, Part, PromptScore, TextCache,
};

/// The second half of a `Score` answered before its verdicts: its prompts and what was sent.
pub(super) struct FollowUp {
    pub(super) image: ImageRef,
    pub(super) prompts: Vec<String>,
    pub(super) results: Results,
}

/// Copies the verdicts (the scorers' scores, their functional-word columns and text, and
/// SmartCLIP's) from `from` into `to`, leaving the maps and CLIP's scores as they are.
fn copy_verdicts(to: &mut PromptScore, from: PromptScore) {
    to.dcsm_scores = from.dcsm_scores;
    to.functional = from.functional;
    to.dcsm_text = from.dcsm_text;
    to.smartclip = from.smartclip;
}

/// Fills in, on results sent before the verdicts, SmartCLIP's verdicts of the prompts whose
/// SmartCLIP part is cached already (no text pass runs): after an edit only the edited prompt
/// waits for its own. The scorers' verdicts all wait for the follow-up, since each depends on
/// every prompt scored with it (the maps are z-scored together).
pub(super) fn ready_smartclip(
    model: &LoadedModel,
    image: &EncodedImage,
    prompts: &[String],
    text: &mut TextCache,
    scores: &mut [PromptScore],
) -> Result<(), ModelError> {
    let (lacking, _) = text.lacking(prompts, Part::Smart);
    let ready: Vec<usize> = (0..prompts.len())
        .filter(|&i| !lacking.contains(&prompts[i]))
        .collect();
    if ready.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = ready.iter().map(|&i| prompts[i].clone()).collect();
    let encoded = model.encode_prompts_cached_quick(&names, text)?.0;
    if let Some(verdicts) = model.smartclip_scores(image, &encoded)? {
        for (&i, v) in ready.iter().zip(verdicts) {
            scores[i].smartclip = Some(v);
        }
    }
    Ok(())
}

/// Sends `f`'s results again with every verdict, after the text passes they wait for.
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
        .and_then(|encoded| model.score(&entry.encoded, &encoded));
    match verdicts {
        Ok(scores) => {
            for (to, from) in results.prompts.iter_mut().zip(scores) {
                copy_verdicts(to, from);
            }
            results.verdicts_pending = false;
            tracing::debug!(image = image.id, "verdicts in {:.1} ms", elapsed_ms(start));
            out.send(Event::Results(results));
        }
        Err(e) => out.error(Some(image.id), Some(results.generation), one_line(&e)),
    }
}
