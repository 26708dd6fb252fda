//! Negation compare: two pinned prompts' maps side by side on one scale, and their difference.

use super::{colour, heatmap, ClipscopeApp};
use crate::dcsm::patch_map;
use crate::engine::PromptScore;
use crate::render::Scale;

/// The token of `score` to compare: the selected word if both prompts have it, else EOS.
fn token_for(score: &PromptScore, word: Option<&str>) -> usize {
    word.and_then(|w| {
        score
            .tokenized
            .words
            .iter()
            .find(|x| x.text == w)
            .map(|x| x.start)
    })
    .unwrap_or(score.tokenized.ids.len() - 1)
}

pub fn show(app: &mut ClipscopeApp, ui: &mut egui::Ui) {
    let [Some(a), Some(b)] = app.pinned else {
        ui.heading("Compare two prompts");
        ui.label("Pin two prompts with the A and B buttons in the prompt list, e.g. \"a red circle\" and \"a red circle and no blue square\".");
        return;
    };
    let (Some(sa), Some(sb)) = (app.score_of(a).cloned(), app.score_of(b).cloned()) else {
        ui.weak("waiting for scores");
        return;
    };
    let Some((tex, info)) = app.current_view() else {
        return;
    };
    heatmap::view_controls(app, ui);
    // Compare the same word in both prompts when possible.
    let words: Vec<String> = sa.tokenized.words.iter().map(|w| w.text.clone()).collect();
    let mut word = app.compare_word.clone().filter(|w| words.contains(w));
    ui.horizontal_wrapped(|ui| {
        ui.label("word:");
        for w in &words {
            let in_b = sb.tokenized.words.iter().any(|x| &x.text == w);
            let r = ui.add_enabled(
                in_b,
                egui::Button::selectable(word.as_deref() == Some(w.as_str()), w),
            );
            if r.on_hover_text("compare this word's map in both prompts (EOS: the pooled token)")
                .clicked()
            {
                word = Some(w.clone());
            }
        }
    });
    app.compare_word = word.clone();
    let (ta, tb) = (
        token_for(&sa, word.as_deref()),
        token_for(&sb, word.as_deref()),
    );
    let (ma, mb) = (patch_map(&sa.dcsm, ta), patch_map(&sb.dcsm, tb));
    let diff: Vec<f32> = ma.iter().zip(&mb).map(|(x, y)| x - y).collect();
    let scale = Scale::symmetric(ma.iter().chain(&mb));
    let diff_scale = Scale::symmetric(&diff);
    ui.horizontal(|ui| {
        colour::colour_bar(ui, scale, "A and B share this scale");
        ui.separator();
        colour::colour_bar(ui, diff_scale, "A − B");
    });
    let side = ((ui.available_width() - 40.0) / 3.0)
        .min(ui.available_height() - 80.0)
        .max(80.0);
    ui.horizontal_top(|ui| {
        for (title, s, map, sc, key) in [
            (
                format!("A: {}", sa.tokenized.text),
                Some(&sa),
                &ma,
                scale,
                "A",
            ),
            (
                format!("B: {}", sb.tokenized.text),
                Some(&sb),
                &mb,
                scale,
                "B",
            ),
            ("A − B".to_string(), None, &diff, diff_scale, "D"),
        ] {
            ui.vertical(|ui| {
                ui.set_width(side);
                let scores = match s {
                    Some(s) => format!(
                        "cosine {:.4}, probability {:.3}",
                        s.clip_cosine, s.clip_prob
                    ),
                    None => format!("cosine A − B {:+.4}", sa.clip_cosine - sb.clip_cosine),
                };
                ui.strong(title);
                ui.label(scores);
                let (rect, _) =
                    ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
                let crop = heatmap::crop_only(ui, &tex, rect, &info);
                heatmap::paint_map(
                    app,
                    ui,
                    format!("compare/{key}/{}/{a}/{b}/{ta}/{tb}", info.id),
                    map,
                    info.grid,
                    sc,
                    crop,
                );
            });
        }
    });
}
