//! What the worker says, applied to the app: model ready, image encoded, results, errors; and
//! the notices the status bar shows.

use std::sync::Arc;
use std::time::Instant;

use super::state::*;
use super::ClipscopeApp;
use crate::worker::{Event, ImageRef, Job, Results};

impl ClipscopeApp {
    pub(super) fn notice(&mut self, text: String, error: bool) {
        self.notices.push(Notice {
            text,
            error,
            at: Instant::now(),
        });
        if self.notices.len() > 6 {
            // The oldest message goes, but an older error only when no other message is left.
            let older = &self.notices[..self.notices.len() - 1];
            let oldest = older.iter().position(|n| !n.error).unwrap_or(0);
            self.notices.remove(oldest);
        }
    }

    pub(super) fn on_event(&mut self, event: Event) {
        match event {
            Event::Progress(p) => self.model.progress = Some((p.what, p.done, p.total)),
            Event::ModelReady(info) => {
                // Another load may still be on its way; this answer is for `info.source`.
                if self.model.loading.as_ref() == Some(&info.source) {
                    self.model.loading = None;
                    self.model.progress = None;
                }
                self.model.source = Some(info.source.clone());
                self.notice(
                    format!("model ready: {} ({} ms)", info.name, info.load_ms.round()),
                    false,
                );
                self.model.info = Some(info);
                self.shown.clear();
                self.textures.clear();
                // Encodings of the old model are gone: encode every image again, current first
                // (those that waited for a model too).
                let mut order: Vec<usize> = (0..self.gallery.images.len()).collect();
                order.sort_by_key(|i| Some(self.gallery.images[*i].id) != self.gallery.current);
                for i in order {
                    let e = &mut self.gallery.images[i];
                    if !matches!(e.status, ImageStatus::Failed(_)) {
                        e.status = ImageStatus::Encoding;
                        self.client.send(Job::EncodeImage {
                            image: ImageRef {
                                id: e.id,
                                input: e.input.clone(),
                            },
                        });
                    }
                }
                self.mark_dirty();
            }
            Event::ImageReady(info) => {
                self.encodes += 1;
                self.timings.encode_ms = Some(info.encode_ms);
                // Its texture is made by `upload_previews`, a few a frame.
                if let Some(e) = self.gallery.entry_mut(info.id) {
                    e.status = ImageStatus::Ready(info);
                }
            }
            Event::Results(r) => {
                if self.timings.first_results_ms.is_none() {
                    let ms = self.started.elapsed().as_secs_f64() * 1e3;
                    self.timings.first_results_ms = Some(ms);
                    tracing::info!("first maps {ms:.0} ms after start");
                }
                let Some(request) = self.client.answered(r.generation) else {
                    self.complete_verdicts(r);
                    return;
                };
                let image_id = r.image_id;
                let newer = self
                    .shown
                    .get(&r.image_id)
                    .is_none_or(|s| s.results.generation < r.generation);
                if newer {
                    let ms = self
                        .client
                        .now()
                        .saturating_duration_since(request.edited_at)
                        .as_secs_f64()
                        * 1e3;
                    self.timings.edit_to_maps_ms = Some(ms);
                    self.timings.edits.push(ms);
                    self.timings.score_ms = Some(r.score_ms);
                    for (i, p) in r.prompts.iter().enumerate() {
                        if p.tokenized.truncated {
                            let idx = request.prompt_index[i];
                            let known = self
                                .notices
                                .iter()
                                .any(|n| n.text.starts_with(&format!("prompt {} ", idx + 1)));
                            if !known {
                                self.notice(
                                    format!(
                                        "prompt {} has {} tokens; the model reads {}: it was truncated",
                                        idx + 1,
                                        p.tokenized.full_len,
                                        p.tokenized.ids.len()
                                    ),
                                    false,
                                );
                            }
                        }
                    }
                    self.textures.clear();
                    let shown = Shown::new(r, request.prompt_index, self.shown.get(&image_id));
                    self.shown.insert(image_id, shown);
                }
            }
            Event::ModelFailed { source, message } => {
                if self.model.loading.as_ref() == Some(&source) {
                    self.model.loading = None;
                    self.model.progress = None;
                }
                // The worker dropped the previous model before trying: there is none now, and
                // every image waits for the next one that loads. `source` stays the last model
                // that loaded, which the saved state names for the next start.
                self.model.info = None;
                self.shown.clear();
                self.textures.clear();
                for e in &mut self.gallery.images {
                    if !matches!(e.status, ImageStatus::Failed(_)) {
                        e.status = ImageStatus::NoModel;
                    }
                }
                self.notice(message, true);
            }
            Event::Error {
                image_id,
                generation,
                message,
            } => {
                if let Some(g) = generation {
                    self.client.failed(g);
                }
                if self.model.info.is_none() {
                    // Failed for want of a model (ModelFailed said so once): it waits for one.
                    if let Some(e) = image_id.and_then(|id| self.gallery.entry_mut(id)) {
                        e.status = ImageStatus::NoModel;
                        return;
                    }
                }
                if let (Some(id), None) = (image_id, generation) {
                    if let Some(e) = self.gallery.entry_mut(id) {
                        e.status = ImageStatus::Failed(message.clone());
                        let name = e.name.clone();
                        self.notice(format!("{name}: {message}"), true);
                        return;
                    }
                }
                self.notice(message, true);
            }
        }
    }

    /// Verdicts following results already shown (`Results::verdicts_pending`):
    /// they replace those results if they are still the ones shown for the image.
    fn complete_verdicts(&mut self, r: Results) {
        if r.verdicts_pending {
            return;
        }
        if let Some(s) = self.shown.get_mut(&r.image_id) {
            if s.results.generation == r.generation && s.results.verdicts_pending {
                s.results = Arc::new(r);
                s.stale.clear();
            }
        }
    }
}
