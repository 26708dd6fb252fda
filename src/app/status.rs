//! The top bar (menus, views) and the status bar (model, device, timings, messages).

use super::command::{Command, Commands};
use super::state::View;
use super::{export, ClipscopeApp};
use crate::engine::{ImageConvention, ModelSource, TextConvention};
use crate::io::presets::{self, PRESETS};

/// Menus and the view tabs (the tabs edit the view setting in place).
pub fn top_bar(app: &mut ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    egui::Panel::top("menu").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open images…  (Ctrl+O)").clicked() {
                    out.push(Command::OpenImages);
                    ui.close();
                }
                if ui.button("Paste image  (Ctrl+V)").clicked() {
                    out.push(Command::PasteImage);
                    ui.close();
                }
                if ui.button("Add demo scenes").clicked() {
                    out.push(Command::AddDemos);
                    ui.close();
                }
                ui.separator();
                for (what, label) in [
                    (export::What::Overlay, "Export overlay as PNG…"),
                    (export::What::Grid, "Export token grid as PNG…"),
                    (export::What::MatrixPng, "Export matrix as PNG…"),
                    (export::What::MatrixCsv, "Export matrix as CSV…"),
                ] {
                    if ui.button(label).clicked() {
                        out.push(Command::Export(what));
                        ui.close();
                    }
                }
            });
            ui.menu_button("Model", |ui| out.append(model_menu(ui)));
            ui.separator();
            for (view, name, tip) in [
                (
                    View::Overlay,
                    "Overlay",
                    "The selected token's map on the image",
                ),
                (View::Grid, "Token grid", "Every token's map at once"),
                (
                    View::Matrix,
                    "Matrix",
                    "The whole (1 + patches) × tokens DCSM",
                ),
                (
                    View::Compare,
                    "Compare",
                    "Two pinned prompts side by side and their difference",
                ),
                (
                    View::Masks,
                    "Masks",
                    "SmartCLIP: which embedding dimensions each prompt keeps",
                ),
            ] {
                ui.selectable_value(&mut app.settings.view, view, name)
                    .on_hover_text(tip);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.checkbox(&mut app.settings.show_timings, "timings")
                    .on_hover_text("Encode, score and frame times in the status bar");
            });
        });
    });
    out
}

fn model_menu(ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    if ui
        .button("Embedded shapes-world model")
        .on_hover_text("The small CLIP trained by clipscope, always available offline")
        .clicked()
    {
        out.push(Command::LoadModel(ModelSource::Embedded));
        ui.close();
    }
    if ui
        .button("Local folder…")
        .on_hover_text("A folder with config.json and model.safetensors")
        .clicked()
    {
        out.push(Command::PickModelFolder);
        ui.close();
    }
    ui.separator();
    ui.label("Download from the Hugging Face hub:");
    for p in &PRESETS {
        let tip = format!(
            "{}\nDownloads into the standard Hugging Face cache (needs a network)",
            presets::describe(p)
        );
        let button = ui.add_enabled(
            p.unsupported.is_none(),
            egui::Button::new(format!("{}  ({})", p.name, p.family)),
        );
        if button
            .on_hover_text(&tip)
            .on_disabled_hover_text(&tip)
            .clicked()
        {
            out.push(Command::LoadModel(ModelSource::Preset(p.name.to_string())));
            ui.close();
        }
    }
    out
}

/// Messages, the model, its device and the timings.
pub fn bottom_bar(app: &ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    egui::Panel::bottom("status").show(ui, |ui| {
        let mut dismiss = None;
        for (i, n) in app.notices.iter().enumerate() {
            ui.horizontal_wrapped(|ui| {
                let colour = if n.error { ui.visuals().error_fg_color } else { ui.visuals().weak_text_color() };
                // Long messages (an offline hub error ends with its advice) wrap instead of
                // running past the window's edge.
                ui.add(egui::Label::new(egui::RichText::new(&n.text).color(colour)).wrap());
                if n.error && ui.small_button("dismiss").on_hover_text("Hide this message").clicked() {
                    dismiss = Some(i);
                }
            });
        }
        if let Some(i) = dismiss {
            out.push(Command::DismissNotice(i));
        }
        ui.horizontal(|ui| {
            if let Some(source) = &app.model.loading {
                ui.spinner();
                ui.label(format!("loading {source}"));
                if let Some((what, done, total)) = &app.model.progress {
                    match total {
                        Some(t) if *t > 0 => {
                            ui.add(egui::ProgressBar::new(*done as f32 / *t as f32).desired_width(200.0).text(what.as_str()));
                        }
                        _ => {
                            ui.label(format!("{what}: {:.1} MB", *done as f64 / 1e6));
                        }
                    }
                }
            } else if let Some(info) = &app.model.info {
                // A folder by its own name (the whole path is in the tooltip).
                let short = match &app.model.source {
                    Some(ModelSource::Folder(p)) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
                    _ => None,
                };
                let pipeline = match (info.pipeline.image, info.pipeline.text) {
                    (ImageConvention::Transformers, TextConvention::Transformers) => {
                        "transformers' pipeline (CLIPImageProcessor, fast tokenizer)"
                    }
                    (ImageConvention::Openai, TextConvention::Openai) => {
                        "OpenAI's pipeline (torchvision transform, ftfy text clean-up)"
                    }
                    (ImageConvention::Openai, _) => "OpenAI's torchvision transform, transformers' tokenizer",
                    (_, TextConvention::Openai) => "transformers' image processor, OpenAI's text clean-up",
                };
                ui.label(format!("model: {}", short.as_deref().unwrap_or(&info.name))).on_hover_text(format!(
                    "{}\n{}×{} patches of a {} px input, {}-d embeddings, {} text tokens; loaded in {:.0} ms\n{pipeline}",
                    info.name, info.grid.0, info.grid.1, info.image_size, info.projection_dim, info.context, info.load_ms
                ));
                ui.separator();
                ui.label(&info.device);
            } else {
                ui.label("no model");
            }
            ui.separator();
            if app.settings.show_timings {
                timings(&app.timings, ui);
            }
            let encoding = app.gallery.encoding();
            if encoding > 0 {
                ui.label(format!("encoding {encoding} of {} images", app.gallery.images.len()))
                    .on_hover_text("Decoded and encoded on the worker thread, the current one first");
            }
            if app.busy() {
                ui.spinner();
            }
        });
    });
    out
}

/// Encode, score, edit-to-maps and frame times.
fn timings(t: &super::state::Timings, ui: &mut egui::Ui) {
    let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0} ms"));
    ui.label(format!("encode {}", ms(t.encode_ms)))
        .on_hover_text("last image: decode, preprocess and vision tower");
    ui.label(format!("score {}", ms(t.score_ms)))
        .on_hover_text("last prompt set: text tower and DCSMs");
    ui.label(format!("edit-to-maps {}", ms(t.edit_to_maps_ms)))
        .on_hover_text("from sending a prompt edit to its maps arriving");
    if let Some((median, max)) = t.frame_summary() {
        ui.label(format!("ui {median:.1}/{max:.1} ms"))
            .on_hover_text("UI code per frame: median / max of recent frames");
    }
}
