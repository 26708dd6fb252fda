//! Score bars: every prompt's plain cosine, probability (CLIP's softmax or SigLIP's sigmoid) and
//! DCSM score, one chart per score.

use egui_plot::{Bar, BarChart, Plot};

use super::ClipscopeApp;
use crate::engine::{Family, ScoreKind};

/// Why a SigLIP model has neither CLIP head.
pub const SIGLIP_HEADS: &str = "The DCSM scorer and SmartCLIP's mask network are trained on a \
CLIP model's own maps and EOS-pooled text embedding; SigLIP's pooled embeddings come from an \
attention-pooling head and a last-position text token, so no trained head fits it. Its dense \
maps are shown; its score is the sigmoid above.";

/// A named score with one value per prompt (None where unscored).
struct Series {
    name: String,
    help: &'static str,
    values: Vec<Option<f64>>,
    /// A verdict (scorer, SmartCLIP): greyed while the shown results' verdicts are on their way.
    verdict: bool,
}

/// How to read DCSM scores.
const DCSM_HELP: &str = "the DCSM scorer's output: a small CNN over the prompt's dense cosine \
map, functional-word columns replaced by fixed vectors. The maps of all prompts are z-scored \
together, so a score is relative to the other prompts: compare prompts here, not across images \
or prompt sets.";

pub fn show(app: &mut ClipscopeApp, ui: &mut egui::Ui) {
    ui.heading("Scores");
    let n = app.prompts.len();
    let family = app.family();
    let (probability, probability_help) = match family.score_kind() {
        ScoreKind::Softmax => (
            "CLIP probability (softmax over the prompts)",
            "softmax over the prompts of exp(logit_scale) · cosine: the prompts compete, the \
             bars sum to 1",
        ),
        ScoreKind::Sigmoid => (
            "SigLIP probability (sigmoid, each prompt alone)",
            "sigmoid(exp(logit_scale) · cosine + logit_bias) for each prompt on its own: SigLIP \
             is trained with a sigmoid loss, so the bars need not sum to 1",
        ),
    };
    let mut series = vec![
        Series {
            name: format!("{} cosine", family.name()),
            help: "cosine of the pooled image and text embeddings",
            values: (0..n)
                .map(|i| app.score_of(i).map(|s| f64::from(s.clip_cosine)))
                .collect(),
            verdict: false,
        },
        Series {
            name: probability.into(),
            help: probability_help,
            values: (0..n)
                .map(|i| app.score_of(i).map(|s| f64::from(s.clip_prob)))
                .collect(),
            verdict: false,
        },
    ];
    // The model's heads, not the scores: right after an edit their verdicts are on their way.
    let info = app.model.info.as_ref();
    let scorer = info.and_then(|i| i.scorer);
    if let Some(scorer) = scorer {
        series.push(Series {
            name: format!("DCSM score ({scorer})"),
            help: DCSM_HELP,
            values: (0..n)
                .map(|i| verdicts(app, i).and_then(|v| v.dcsm).map(f64::from))
                .collect(),
            verdict: true,
        });
    }
    if info.is_some_and(|i| i.smartclip) {
        series.push(Series {
            name: "SmartCLIP score".into(),
            help: "cosine of the image embedding, masked to the prompt's own dimensions, with the \
                   text embedding",
            values: (0..n)
                .map(|i| verdicts(app, i).and_then(|v| v.smartclip).map(f64::from))
                .collect(),
            verdict: true,
        });
    }
    if app.current_shown().is_none() {
        ui.weak("no scores yet");
        return;
    }
    if family == Family::Siglip {
        ui.add_enabled(
            false,
            egui::Label::new("DCSM scorer · SmartCLIP: not for SigLIP"),
        )
        .on_disabled_hover_text(SIGLIP_HEADS);
    }
    let selected = app.selection.prompt;
    let pending = app.verdicts_pending();
    for s in series {
        let stale = s.verdict && pending;
        let name = match stale {
            true => format!("{} (updating…)", s.name),
            false => s.name.clone(),
        };
        ui.label(name).on_hover_text(s.help);
        if s.help == DCSM_HELP {
            ui.small("z-scored over these prompts together: relative, not absolute");
        }
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
                    if stale {
                        bar.fill(egui::Color32::from_gray(120))
                    } else if i == selected {
                        bar.fill(egui::Color32::from_rgb(200, 60, 50))
                    } else {
                        bar.fill(egui::Color32::from_rgb(90, 120, 170))
                    }
                })
            })
            .collect();
        Plot::new(&s.name)
            .height(110.0)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .include_y(0.0)
            // Every prompt's slot, scored or not, so a missing bar never shifts the others.
            .include_x(0.5)
            .include_x(n as f64 + 0.5)
            .x_axis_formatter(|m, _| {
                if m.value.fract() == 0.0 && m.value >= 1.0 {
                    format!("{}", m.value)
                } else {
                    String::new()
                }
            })
            .show(ui, |plot| {
                plot.bar_chart(BarChart::new(s.name.as_str(), bars))
            });
        let text: Vec<String> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{}: {v:.4}", i + 1)))
            .collect();
        ui.small(text.join("   "));
    }
}

/// The verdicts prompt `i` shows: its own, or the stale ones while they are on their way.
fn verdicts(app: &ClipscopeApp, i: usize) -> Option<crate::app::state::StaleVerdicts> {
    app.current_shown()?.verdicts_of(i)
}
