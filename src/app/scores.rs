//! Score bars: every prompt's plain CLIP cosine and softmax probability, one chart per score.

use egui_plot::{Bar, BarChart, Plot};

use super::ClipscopeApp;

/// A named score with one value per prompt (None where unscored).
struct Series {
    name: &'static str,
    help: &'static str,
    values: Vec<Option<f64>>,
}

pub fn show(app: &mut ClipscopeApp, ui: &mut egui::Ui) {
    ui.heading("Scores");
    let n = app.prompts.len();
    let series = [
        Series {
            name: "CLIP cosine",
            help: "cosine of the pooled image and text embeddings",
            values: (0..n)
                .map(|i| app.score_of(i).map(|s| f64::from(s.clip_cosine)))
                .collect(),
        },
        Series {
            name: "CLIP probability",
            help: "softmax over the prompts of exp(logit_scale) · cosine",
            values: (0..n)
                .map(|i| app.score_of(i).map(|s| f64::from(s.clip_prob)))
                .collect(),
        },
    ];
    if app.current_shown().is_none() {
        ui.weak("no scores yet");
        return;
    }
    let selected = app.selected_prompt;
    for s in series {
        ui.label(s.name).on_hover_text(s.help);
        let bars: Vec<Bar> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.map(|v| {
                    let bar = Bar::new((i + 1) as f64, v).width(0.7).name(format!(
                        "prompt {}: {}",
                        i + 1,
                        app.prompts[i]
                    ));
                    if i == selected {
                        bar.fill(egui::Color32::from_rgb(200, 60, 50))
                    } else {
                        bar.fill(egui::Color32::from_rgb(90, 120, 170))
                    }
                })
            })
            .collect();
        Plot::new(s.name)
            .height(110.0)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .include_y(0.0)
            .x_axis_formatter(|m, _| {
                if m.value.fract() == 0.0 && m.value >= 1.0 {
                    format!("{}", m.value)
                } else {
                    String::new()
                }
            })
            .show(ui, |plot| plot.bar_chart(BarChart::new(s.name, bars)));
        let text: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{}: {v:.4}", i + 1)))
            .collect();
        ui.small(text.join("   "));
    }
}
