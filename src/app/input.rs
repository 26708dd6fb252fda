//! Keyboard, dropped files and paste: the input the whole window answers to.

use std::sync::Arc;

use super::ClipscopeApp;
use crate::worker::ImageInput;

impl ClipscopeApp {
    pub(super) fn handle_input(&mut self, ctx: &egui::Context) {
        let (dropped, open, paste, delete, left, right) = ctx.input(|i| {
            (
                i.raw.dropped_files.clone(),
                i.modifiers.command && i.key_pressed(egui::Key::O),
                i.modifiers.command && i.key_pressed(egui::Key::V),
                i.key_pressed(egui::Key::Delete),
                i.key_pressed(egui::Key::ArrowLeft),
                i.key_pressed(egui::Key::ArrowRight),
            )
        });
        for f in dropped {
            let path = f.path().to_path_buf();
            if path.is_file() {
                self.add_path(path);
            } else {
                match f.bytes() {
                    Ok(bytes) => {
                        let name = path
                            .file_name()
                            .map_or("dropped file".into(), |n| n.to_string_lossy().into_owned());
                        self.add_image(name, ImageInput::Bytes(Arc::new(bytes)));
                    }
                    Err(e) => self.notice(
                        format!("could not read the dropped file {}: {e}", path.display()),
                        true,
                    ),
                }
            }
        }
        if open {
            self.open_dialog();
        }
        let typing = ctx.memory(|m| m.focused().is_some());
        if paste && !typing {
            self.paste_image();
        }
        if delete && !typing {
            if let Some(id) = self.gallery.current {
                self.remove_image(id);
            }
        }
        if !typing {
            if left {
                self.selection.token = Some(self.selected_token().saturating_sub(1));
            }
            if right {
                let n = self
                    .score_of(self.selection.prompt)
                    .map_or(0, |s| s.tokenized.ids.len());
                self.selection.token = Some((self.selected_token() + 1).min(n.saturating_sub(1)));
            }
        }
    }
}
