//! The image with a token's patch map over the crop the model saw, token chips, and the grid view.

use super::command::{Command, Commands};
use super::textures::{MapKey, MapView, TextureKey};
use super::{colour, ClipscopeApp};
use crate::dcsm::patch_map;
use crate::engine::PromptScore;

/// The colour marking functional-word columns (replaced by the DCSM scorer).
pub const FUNCTIONAL: egui::Color32 = egui::Color32::from_rgb(214, 120, 20);

/// The row of token chips: words with their BPE pieces, SOS and EOS included.
pub fn token_chips(app: &ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    let Some(score) = app.score_of(app.selection.prompt).cloned() else {
        ui.weak("no tokens yet: type a prompt");
        return out;
    };
    let active = app.active_token();
    ui.horizontal_wrapped(|ui| {
        ui.label(format!("prompt {} tokens:", app.selection.prompt + 1));
        for word in &score.tokenized.words {
            let pieces = word.end - word.start;
            let frame = egui::Frame::new().stroke(ui.visuals().widgets.noninteractive.bg_stroke).inner_margin(2.0).corner_radius(4.0);
            frame.show(ui, |ui| ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing.x = 2.0;
                for t in word.start..word.end {
                    let label = &score.tokenized.labels[t];
                    let functional = score.functional.iter().find(|r| r.column == t);
                    let text = match functional {
                        Some(_) => egui::RichText::new(format!("{label} ƒ")).color(FUNCTIONAL),
                        None => egui::RichText::new(label),
                    };
                    let chip = ui.selectable_label(active == Some(t) || app.selected_token() == t, text);
                    let mut tip = if pieces > 1 {
                        format!("token {t} `{}`: piece of the word \"{}\"; click to select, hover to preview", score.tokenized.tokens[t], word.text)
                    } else {
                        format!("token {t} `{}`; click to select, hover to preview", score.tokenized.tokens[t])
                    };
                    if let Some(r) = functional {
                        tip.push_str(&format!("\nƒ: the DCSM scorer replaces this column with its fixed vector for \"{}\"", r.word));
                    }
                    let chip = chip.on_hover_text(tip);
                    if chip.hovered() {
                        out.push(Command::HoverToken(t));
                    }
                    if chip.clicked() {
                        out.push(Command::SelectToken(t));
                    }
                }
            }));
        }
    });
    out
}

/// Controls shared by the image views.
pub fn view_controls(app: &mut ClipscopeApp, ui: &mut egui::Ui) {
    super::maps::controls(app, ui);
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut app.settings.opacity, 0.0..=1.0).text("opacity"))
            .on_hover_text("How strongly the map covers the image");
        ui.checkbox(&mut app.settings.smooth, "smooth")
            .on_hover_text("Interpolate between patch centres instead of square cells");
        ui.checkbox(&mut app.settings.show_crop, "crop")
            .on_hover_text("Outline the square the model saw");
        ui.separator();
        use super::state::ScaleMode;
        ui.selectable_value(&mut app.settings.scale, ScaleMode::Locked, "locked scale")
            .on_hover_text(
                "One symmetric scale for every token and prompt: colours compare across maps",
            );
        ui.selectable_value(&mut app.settings.scale, ScaleMode::PerMap, "per-map range")
            .on_hover_text(
                "Stretch each map from its own minimum to its maximum: shows structure, but colours no longer compare and white is no longer zero",
            );
    });
}

/// Draws `image` fitted into `rect`; returns the screen rectangle of the crop.
fn draw_image(
    app: &ClipscopeApp,
    ui: &egui::Ui,
    tex: &egui::TextureHandle,
    rect: egui::Rect,
    info: &crate::worker::ImageInfo,
) -> egui::Rect {
    let size = tex.size_vec2();
    let scale = (rect.width() / size.x).min(rect.height() / size.y);
    let shown = egui::Rect::from_min_size(rect.min, size * scale);
    let painter = ui.painter_at(rect);
    painter.image(
        tex.id(),
        shown,
        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        egui::Color32::WHITE,
    );
    let (ow, oh) = (info.original.0 as f32, info.original.1 as f32);
    let c = info.crop;
    let crop = egui::Rect::from_min_size(
        shown.min + egui::vec2(c.x / ow * shown.width(), c.y / oh * shown.height()),
        egui::vec2(c.w / ow * shown.width(), c.h / oh * shown.height()),
    );
    if app.settings.show_crop
        && (crop.width() < shown.width() - 1.0 || crop.height() < shown.height() - 1.0)
    {
        painter.rect_stroke(
            crop,
            0.0,
            (2.0, egui::Color32::YELLOW),
            egui::StrokeKind::Outside,
        );
    }
    crop
}

/// Paints a patch map over `crop`.
pub fn paint_map(
    app: &mut ClipscopeApp,
    ui: &egui::Ui,
    key: MapKey,
    map: &[f32],
    grid: (usize, usize),
    scale: crate::render::Scale,
    crop: egui::Rect,
) {
    let smooth = app.settings.smooth;
    let key = TextureKey::new(key, smooth, app.settings.scale, scale);
    let tex = app.textures.get_or_make(&app.ctx, key, || {
        let filter = if smooth {
            egui::TextureOptions::LINEAR
        } else {
            egui::TextureOptions::NEAREST
        };
        (colour::heat_image(map, grid, scale), filter)
    });
    // Texel centres sit on patch centres; with LINEAR filtering this interpolates between them.
    let tint = egui::Color32::from_white_alpha((app.settings.opacity * 255.0) as u8);
    ui.painter().image(
        tex.id(),
        crop,
        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        tint,
    );
}

/// Paints token `t`'s patch map of `score` over `crop`, on the scale the settings ask for.
pub fn paint_token(
    app: &mut ClipscopeApp,
    ui: &egui::Ui,
    view: MapView,
    score: &PromptScore,
    t: usize,
    info: &crate::worker::ImageInfo,
    crop: egui::Rect,
) {
    let map = patch_map(&score.dcsm, t);
    let scale = app.scale_for(&map);
    let key = MapKey::Token {
        view,
        image: info.id,
        prompt: app.selection.prompt,
        token: t,
    };
    paint_map(app, ui, key, &map, info.grid, scale, crop);
}

/// The patch under the pointer, if it is inside `crop`.
fn patch_at(pos: Option<egui::Pos2>, crop: egui::Rect, grid: (usize, usize)) -> Option<usize> {
    let p = pos?;
    if !crop.contains(p) {
        return None;
    }
    let c = (((p.x - crop.left()) / crop.width() * grid.1 as f32) as usize).min(grid.1 - 1);
    let r = (((p.y - crop.top()) / crop.height() * grid.0 as f32) as usize).min(grid.0 - 1);
    Some(r * grid.1 + c)
}

pub fn outline_patch(ui: &egui::Ui, crop: egui::Rect, grid: (usize, usize), patch: usize) {
    let (r, c) = (patch / grid.1, patch % grid.1);
    let w = crop.width() / grid.1 as f32;
    let h = crop.height() / grid.0 as f32;
    let cell = egui::Rect::from_min_size(
        crop.min + egui::vec2(c as f32 * w, r as f32 * h),
        egui::vec2(w, h),
    );
    ui.painter().rect_stroke(
        cell,
        0.0,
        (2.0, egui::Color32::WHITE),
        egui::StrokeKind::Inside,
    );
}

/// The current image, the active token's map on it, chips and a colour bar.
pub fn overlay_view(app: &mut ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = token_chips(app, ui);
    view_controls(app, ui);
    let Some(entry) = app.current_entry() else {
        ui.centered_and_justified(|ui| {
            ui.heading("Drop images here, press Ctrl+O, or pick a demo scene")
        });
        return out;
    };
    let (Some(tex), Some(info)) = (
        entry.texture.clone(),
        entry.info().map(|i| app.map_geometry(i)),
    ) else {
        match &entry.status {
            super::state::ImageStatus::Failed(m) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("{}: {m}", entry.name));
            }
            super::state::ImageStatus::NoModel => {
                ui.label("No model is loaded: choose one in the Model menu.");
            }
            _ => {
                ui.spinner();
            }
        }
        return out;
    };
    let score = app.score_of(app.selection.prompt).cloned();
    let token = app.active_token();
    if let (Some(s), Some(t)) = (&score, token) {
        let map = patch_map(&s.dcsm, t);
        let scale = app.scale_for(&map);
        colour::colour_bar(
            ui,
            scale,
            &format!(
                "token `{}` of prompt {}",
                s.tokenized.labels[t],
                app.selection.prompt + 1
            ),
        );
    }
    let (avail, response) = ui.allocate_exact_size(ui.available_size(), egui::Sense::hover());
    let crop = draw_image(app, ui, &tex, avail, &info);
    let grid = info.grid;
    if let (Some(s), Some(t)) = (&score, token) {
        paint_token(app, ui, MapView::Overlay, s, t, &info, crop);
        let patch = patch_at(response.hover_pos(), crop, grid);
        if let Some(p) = patch {
            outline_patch(ui, crop, grid, p);
            out.push(Command::HoverPatch(p));
            response.on_hover_ui(|ui| patch_tooltip(ui, s, p, grid));
        }
    }
    out
}

/// Every token's value at one patch.
fn patch_tooltip(ui: &mut egui::Ui, s: &PromptScore, patch: usize, grid: (usize, usize)) {
    ui.label(format!(
        "patch row {}, column {}",
        patch / grid.1 + 1,
        patch % grid.1 + 1
    ));
    egui::Grid::new("patch values")
        .striped(true)
        .show(ui, |ui| {
            for (t, label) in s.tokenized.labels.iter().enumerate() {
                ui.label(label);
                ui.label(format!("{:+.4}", s.dcsm.get(patch + 1, t)));
                ui.end_row();
            }
        });
}

/// Small multiples: every token's map at once.
pub fn grid_view(app: &mut ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    view_controls(app, ui);
    let Some((tex, info)) = app.current_view() else {
        return out;
    };
    let Some(score) = app.score_of(app.selection.prompt).cloned() else {
        ui.weak("no maps yet");
        return out;
    };
    let locked = app.locked_scale();
    if app.settings.scale == super::state::ScaleMode::Locked {
        colour::colour_bar(ui, locked, "same scale for every token and prompt");
    }
    let n = score.tokenized.ids.len();
    let width = ui.available_width();
    let per_row = ((width / 170.0).floor() as usize).clamp(1, n.max(1));
    let cell = width / per_row as f32 - 8.0;
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("token grid")
            .spacing([8.0, 8.0])
            .show(ui, |ui| {
                for t in 0..n {
                    ui.vertical(|ui| {
                        let label = format!("{t}: {}", score.tokenized.labels[t]);
                        let (rect, r) =
                            ui.allocate_exact_size(egui::vec2(cell, cell), egui::Sense::click());
                        let crop = crop_only(ui, &tex, rect, &info);
                        paint_token(app, ui, MapView::Grid, &score, t, &info, crop);
                        if app.selected_token() == t {
                            ui.painter().rect_stroke(
                                rect,
                                0.0,
                                (2.0, ui.visuals().selection.stroke.color),
                                egui::StrokeKind::Outside,
                            );
                        }
                        if r.on_hover_text(format!("{label}: click to select this token"))
                            .clicked()
                        {
                            out.push(Command::SelectToken(t));
                        }
                        ui.label(label);
                    });
                    if (t + 1) % per_row == 0 {
                        ui.end_row();
                    }
                }
            });
    });
    out
}

/// Draws only the crop the model saw, filling `rect`; returns `rect`.
pub fn crop_only(
    ui: &egui::Ui,
    tex: &egui::TextureHandle,
    rect: egui::Rect,
    info: &crate::worker::ImageInfo,
) -> egui::Rect {
    let (ow, oh) = (info.original.0 as f32, info.original.1 as f32);
    let c = info.crop;
    let uv = egui::Rect::from_min_max(
        egui::pos2(c.x / ow, c.y / oh),
        egui::pos2((c.x + c.w) / ow, (c.y + c.h) / oh),
    );
    ui.painter().image(tex.id(), rect, uv, egui::Color32::WHITE);
    rect
}
