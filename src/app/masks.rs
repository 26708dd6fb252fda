//! SmartCLIP's masks: every embedding dimension's sigmoid for the selected prompt (kept ones
//! highlighted) and its overlap with another prompt's mask.

use egui_plot::{Bar, BarChart, HLine, Plot};

use super::command::{Command, Commands};
use super::ClipscopeApp;
use crate::engine::SmartScore;

const KEPT: egui::Color32 = egui::Color32::from_rgb(214, 120, 20);
const DROPPED: egui::Color32 = egui::Color32::from_rgb(170, 170, 170);
const OTHER: egui::Color32 = egui::Color32::from_rgb(60, 110, 190);
const BOTH: egui::Color32 = egui::Color32::from_rgb(140, 60, 160);

pub fn show(app: &ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    let Some(mine) = app.score_of(app.selection.prompt).cloned() else {
        ui.weak("no scores yet: type a prompt");
        return out;
    };
    if app.family() == crate::engine::Family::Siglip {
        ui.add_enabled(
            false,
            egui::Label::new("SmartCLIP masks belong to CLIP models: SigLIP has no mask network."),
        )
        .on_disabled_hover_text(super::scores::SIGLIP_HEADS);
        return out;
    }
    let Some(a) = mine.smartclip.clone() else {
        if app.verdicts_pending() {
            ui.weak("SmartCLIP's mask for this prompt follows in a moment…");
            return out;
        }
        ui.label("This model has no SmartCLIP mask network (the embedded model and converted SmartCLIP checkpoints have one).");
        return out;
    };
    let n = app.prompts.len();
    let other = app
        .selection
        .mask_other
        .filter(|o| *o < n && *o != app.selection.prompt)
        .or_else(|| (0..n).find(|i| *i != app.selection.prompt));
    ui.horizontal(|ui| {
        ui.label(format!(
            "prompt {}: \"{}\" keeps {} of {} dimensions ({:.0}%), SmartCLIP score {:+.4}",
            app.selection.prompt + 1,
            mine.tokenized.text,
            kept(&a),
            a.mask.len(),
            a.mask_kept * 100.0,
            a.score
        ));
    });
    mask_plot(ui, "mask a", &a, KEPT);
    let Some(o) = other else {
        ui.weak("add a second prompt to compare masks");
        return out;
    };
    ui.horizontal(|ui| {
        ui.label("compare with");
        egui::ComboBox::from_id_salt("mask other")
            .selected_text(format!("prompt {}", o + 1))
            .show_ui(ui, |ui| {
                for i in (0..n).filter(|i| *i != app.selection.prompt) {
                    let label = format!("{}: {}", i + 1, app.prompts[i]);
                    if ui.selectable_label(o == i, label).clicked() {
                        out.push(Command::MaskOther(i));
                    }
                }
            });
    });
    let Some(b) = app.score_of(o).and_then(|s| s.smartclip.clone()) else {
        ui.weak("waiting for that prompt's scores");
        return out;
    };
    ui.label(format!(
        "prompt {}: \"{}\" keeps {} ({:.0}%), SmartCLIP score {:+.4}",
        o + 1,
        app.prompts[o],
        kept(&b),
        b.mask_kept * 100.0,
        b.score
    ));
    mask_plot(ui, "mask b", &b, OTHER);
    overlap(ui, &a, &b);
    out
}

fn kept(s: &SmartScore) -> usize {
    s.mask.iter().filter(|v| **v >= s.threshold).count()
}

/// One bar per dimension: the sigmoid, coloured when kept.
fn mask_plot(ui: &mut egui::Ui, id: &str, s: &SmartScore, colour: egui::Color32) {
    let bars: Vec<Bar> = s
        .mask
        .iter()
        .enumerate()
        .map(|(d, v)| {
            let fill = if *v >= s.threshold { colour } else { DROPPED };
            Bar::new(d as f64, f64::from(*v))
                .width(0.9)
                .fill(fill)
                .name(format!("dimension {d}"))
        })
        .collect();
    Plot::new(id.to_string())
        .height(120.0)
        .include_y(0.0)
        .include_y(1.0)
        .allow_zoom(true)
        .allow_scroll(false)
        .x_axis_label("embedding dimension")
        .y_axis_label("sigmoid")
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new(id.to_string(), bars));
            plot.hline(HLine::new("threshold", f64::from(s.threshold)));
        });
}

/// Counts and a strip: dimensions kept by both, by one, by neither.
fn overlap(ui: &mut egui::Ui, a: &SmartScore, b: &SmartScore) {
    let d = a.mask.len().min(b.mask.len());
    let (mut both, mut only_a, mut only_b) = (0, 0, 0);
    let kinds: Vec<egui::Color32> = (0..d)
        .map(
            |i| match (a.mask[i] >= a.threshold, b.mask[i] >= b.threshold) {
                (true, true) => {
                    both += 1;
                    BOTH
                }
                (true, false) => {
                    only_a += 1;
                    KEPT
                }
                (false, true) => {
                    only_b += 1;
                    OTHER
                }
                (false, false) => ui.visuals().extreme_bg_color,
            },
        )
        .collect();
    let union = both + only_a + only_b;
    let jaccard = if union > 0 {
        both as f32 / union as f32
    } else {
        0.0
    };
    ui.label(format!(
        "overlap: {both} kept by both, {only_a} only by the first, {only_b} only by the second; \
         Jaccard {jaccard:.2}"
    ));
    let width = ui.available_width();
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 18.0), egui::Sense::hover());
    let step = rect.width() / d.max(1) as f32;
    for (i, c) in kinds.iter().enumerate() {
        let x = rect.left() + i as f32 * step;
        let r = egui::Rect::from_min_max(
            egui::pos2(x, rect.top()),
            egui::pos2(x + step, rect.bottom()),
        );
        ui.painter().rect_filled(r, 0.0, *c);
    }
    ui.horizontal(|ui| {
        for (c, t) in [(BOTH, "both"), (KEPT, "first only"), (OTHER, "second only")] {
            let (r, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().rect_filled(r, 2.0, c);
            ui.label(t);
        }
    });
}
