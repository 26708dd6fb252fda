//! The gallery's images: adding (files, demo scenes, lessons, the clipboard, the file dialog),
//! choosing and removing them.

use std::sync::Arc;

use super::demo;
use super::dialogs::{Answer, Purpose};
use super::state::*;
use super::ClipscopeApp;
use crate::worker::{ImageId, ImageInput, ImageRef, Job};

/// Gallery thumbnails made into textures in one frame at most (each 208² pixels at most), so
/// fifty images dropped at once are spread over frames instead of stalling one.
const THUMBNAILS_PER_FRAME: usize = 4;

impl ClipscopeApp {
    /// Textures for the gallery and the current image: the current image's preview (up to
    /// 1024², made once when it becomes current, dropped when another does, so fifty images
    /// do not hold fifty previews) and `THUMBNAILS_PER_FRAME` thumbnails; asks for another
    /// frame while some wait.
    pub(super) fn upload_previews(&mut self) {
        let current = self.gallery.current;
        let ctx = self.ctx.clone();
        let texture = |name: String, p: &crate::worker::Preview| {
            let image = egui::ColorImage::from_rgba_unmultiplied(
                [p.width as usize, p.height as usize],
                &p.rgba,
            );
            ctx.load_texture(name, image, egui::TextureOptions::LINEAR)
        };
        let mut thumbnails = 0;
        let mut more = false;
        for e in &mut self.gallery.images {
            if Some(e.id) != current {
                e.texture = None;
            }
            let ImageStatus::Ready(info) = &e.status else {
                continue;
            };
            if Some(e.id) == current && e.texture.is_none() {
                e.texture = Some(texture(format!("preview{}", e.id), &info.preview));
            }
            if e.thumbnail.is_none() {
                if thumbnails < THUMBNAILS_PER_FRAME {
                    e.thumbnail = Some(texture(format!("thumbnail{}", e.id), &info.thumbnail));
                    thumbnails += 1;
                } else {
                    more = true;
                }
            }
        }
        if more {
            self.ctx.request_repaint();
        }
    }

    /// The built-in demo scenes with their starter prompts.
    pub fn add_demos(&mut self) {
        for d in demo::scenes() {
            self.add_demo(&d);
        }
        if self.prompts.is_empty() {
            self.start_lesson(0);
        }
    }

    /// Opens lesson `index` of the Starters menu: its demo image (added again if it was removed)
    /// and its prompts, the first two pinned for the compare view.
    pub fn start_lesson(&mut self, index: usize) {
        let Some(d) = demo::scenes().into_iter().nth(index) else {
            return;
        };
        let id = match self.gallery.images.iter().find(|e| e.name == d.name) {
            Some(e) => e.id,
            None => self.add_demo(&d),
        };
        self.set_current(id);
        self.prompts = d.prompts.iter().map(|s| s.to_string()).collect();
        self.selection.prompt = 0;
        self.selection.token = None;
        self.selection.pinned = if self.prompts.len() >= 2 {
            [Some(0), Some(1)]
        } else {
            [None, None]
        };
        self.mark_dirty();
    }

    /// Adds one demo scene to the gallery with its starter prompts.
    fn add_demo(&mut self, d: &demo::Demo) -> ImageId {
        let id = self.add_image(d.name.into(), ImageInput::Bytes(Arc::new(d.png.to_vec())));
        if let Some(e) = self.gallery.entry_mut(id) {
            e.starters = d.prompts.iter().map(|s| s.to_string()).collect();
        }
        id
    }

    pub fn add_path(&mut self, path: std::path::PathBuf) -> ImageId {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.add_image(name, ImageInput::Path(path))
    }

    /// Adds an image to the gallery and asks the worker to encode it.
    pub fn add_image(&mut self, name: String, input: ImageInput) -> ImageId {
        let id = self.gallery.next_id;
        self.gallery.next_id += 1;
        self.client.send(Job::EncodeImage {
            image: ImageRef {
                id,
                input: input.clone(),
            },
        });
        self.gallery.images.push(ImageEntry {
            id,
            name,
            input,
            status: ImageStatus::Encoding,
            texture: None,
            thumbnail: None,
            starters: Vec::new(),
        });
        if self.gallery.current.is_none() {
            self.set_current(id);
        }
        id
    }

    pub fn set_current(&mut self, id: ImageId) {
        if self.gallery.current != Some(id) {
            self.gallery.current = Some(id);
            self.mark_dirty();
        }
    }

    pub fn remove_image(&mut self, id: ImageId) {
        let Some(pos) = self.gallery.images.iter().position(|e| e.id == id) else {
            return;
        };
        self.gallery.images.remove(pos);
        self.shown.remove(&id);
        self.client.send(Job::Forget { image_id: id });
        if self.gallery.current == Some(id) {
            self.gallery.current = None;
            if let Some(next) = self
                .gallery
                .images
                .get(pos.min(self.gallery.images.len().saturating_sub(1)))
                .map(|e| e.id)
            {
                self.set_current(next);
            }
        }
    }

    /// Asks for image files (the system's dialog, else the built-in browser); they arrive
    /// through `on_dialog`.
    pub fn open_dialog(&mut self) {
        self.dialogs.start(Purpose::OpenImages, &self.ctx);
    }

    /// A dialog's answer: add the images, load the model folder, write the export.
    pub(super) fn on_dialog(&mut self, answer: Answer) {
        match answer {
            Answer::Chosen(Purpose::OpenImages, paths) => {
                for path in paths {
                    self.add_path(path);
                }
            }
            Answer::Chosen(Purpose::ModelFolder, mut paths) => {
                if let Some(dir) = paths.pop() {
                    self.load_model(crate::engine::ModelSource::Folder(dir));
                }
            }
            Answer::Chosen(Purpose::Export(what), paths) => {
                if let Some(path) = paths.first() {
                    super::export::save(self, what, path);
                }
            }
            Answer::NoSystemDialog => self.notice(
                "no system file dialog answered (it needs xdg-desktop-portal with a backend such \
                 as xdg-desktop-portal-gtk, or zenity): using the built-in file browser"
                    .into(),
                false,
            ),
        }
    }

    /// Ctrl+V: an image on the clipboard becomes a gallery entry.
    pub fn paste_image(&mut self) {
        let pasted = arboard::Clipboard::new().and_then(|mut c| c.get_image());
        match pasted {
            Ok(img) => {
                let input = ImageInput::Rgba {
                    width: img.width as u32,
                    height: img.height as u32,
                    pixels: Arc::new(img.bytes.into_owned()),
                };
                self.add_image("pasted image".into(), input);
            }
            Err(e) => self.notice(
                format!("nothing to paste: the clipboard holds no image ({e})"),
                true,
            ),
        }
    }
}
