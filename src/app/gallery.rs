//! The gallery strip: thumbnails of every image, add/remove, and the drag-and-drop overlay.

use super::command::{Command, Commands};
use super::state::{ImageEntry, ImageStatus};
use crate::worker::ImageId;

/// The images in the strip and which one the views show.
pub struct Gallery {
    pub images: Vec<ImageEntry>,
    pub current: Option<ImageId>,
    /// The id the next added image gets.
    pub next_id: ImageId,
}

impl Default for Gallery {
    fn default() -> Self {
        Self {
            images: Vec::new(),
            current: None,
            next_id: 1,
        }
    }
}

impl Gallery {
    /// The image the views show.
    pub fn current_entry(&self) -> Option<&ImageEntry> {
        self.images.iter().find(|e| Some(e.id) == self.current)
    }

    /// The image with id `id`, to change.
    pub fn entry_mut(&mut self, id: ImageId) -> Option<&mut ImageEntry> {
        self.images.iter_mut().find(|e| e.id == id)
    }

    /// How many images the worker is still decoding and encoding.
    pub fn encoding(&self) -> usize {
        self.images
            .iter()
            .filter(|e| matches!(e.status, ImageStatus::Encoding))
            .count()
    }
}

/// The strip of thumbnails with its buttons.
pub fn show(gallery: &Gallery, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    egui::Panel::left("gallery")
        .resizable(false)
        .exact_size(128.0)
        .show(ui, |ui| {
            ui.vertical_centered_justified(|ui| {
                if ui
                    .button("Open…")
                    .on_hover_text("Open images (Ctrl+O); you can also drop files on the window")
                    .clicked()
                {
                    out.push(Command::OpenImages);
                }
                if ui
                    .button("Remove")
                    .on_hover_text("Remove the current image (Delete)")
                    .clicked()
                {
                    if let Some(id) = gallery.current {
                        out.push(Command::RemoveImage(id));
                    }
                }
            });
            if ui
                .button("Demo scenes")
                .on_hover_text("Add the built-in shapes-world scenes")
                .clicked()
            {
                out.push(Command::AddDemos);
            }
            ui.separator();
            let mut clicked = None;
            egui::ScrollArea::vertical().show(ui, |ui| {
                for e in &gallery.images {
                    let selected = gallery.current == Some(e.id);
                    let frame = egui::Frame::new()
                        .stroke(if selected {
                            ui.visuals().selection.stroke
                        } else {
                            egui::Stroke::NONE
                        })
                        .inner_margin(2.0);
                    let r = frame
                        .show(ui, |ui| {
                            ui.vertical_centered(|ui| {
                                match (&e.thumbnail, &e.status) {
                                    (Some(t), _) => {
                                        let size = t.size_vec2();
                                        let scale = 104.0 / size.x.max(size.y);
                                        ui.add(
                                            egui::Image::new((t.id(), size * scale))
                                                .sense(egui::Sense::click()),
                                        );
                                    }
                                    (None, ImageStatus::Failed(_)) => {
                                        ui.colored_label(
                                            ui.visuals().error_fg_color,
                                            "cannot read",
                                        );
                                    }
                                    (None, ImageStatus::NoModel) => {
                                        ui.weak("no model");
                                    }
                                    (None, _) => {
                                        ui.spinner();
                                    }
                                }
                                ui.small(&e.name);
                            })
                        })
                        .response
                        .interact(egui::Sense::click());
                    let tip = match &e.status {
                        ImageStatus::Failed(m) => format!("{}: {m}", e.name),
                        ImageStatus::Encoding => format!("{}: encoding…", e.name),
                        ImageStatus::NoModel => format!(
                            "{}: waiting for a model (the last one could not be loaded)",
                            e.name
                        ),
                        ImageStatus::Ready(i) => format!(
                            "{} — {}×{} px, model saw the outlined square ({:.0} ms to encode)",
                            e.name, i.original.0, i.original.1, i.encode_ms
                        ),
                    };
                    if r.on_hover_text(tip).clicked() {
                        clicked = Some(e.id);
                    }
                }
            });
            if let Some(id) = clicked {
                out.push(Command::ShowImage(id));
            }
        });
    out
}

/// A translucent overlay while files are dragged over the window.
pub fn drop_overlay(ui: &mut egui::Ui) {
    let hovering: Vec<String> = ui.ctx().input(|i| {
        i.raw
            .hovered_files
            .iter()
            .map(|f| {
                f.path
                    .as_ref()
                    .map_or_else(|| f.mime.clone(), |p| p.display().to_string())
            })
            .collect()
    });
    if hovering.is_empty() {
        return;
    }
    let screen = ui.ctx().content_rect();
    let painter = ui.ctx().layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop"),
    ));
    painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(170));
    let text = format!(
        "Drop to add {} image(s)\n{}",
        hovering.len(),
        hovering.join("\n")
    );
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        text,
        egui::FontId::proportional(22.0),
        egui::Color32::WHITE,
    );
}
