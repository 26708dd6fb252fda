//! Negation compare: two pinned prompts' maps side by side on one scale, and their difference.

use super::command::{Command, Commands};
use super::textures::{MapKey, Pane};
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

/// The prompts compared: the pinned ones, else the first two (so the view never opens empty).
fn pair(pinned: [Option<usize>; 2], prompts: usize) -> Option<(usize, usize)> {
    let a = pinned[0].filter(|a| *a < prompts).unwrap_or(0);
    let b = pinned[1]
        .filter(|b| *b < prompts)
        .or_else(|| (0..prompts).find(|i| *i != a))?;
    (a != b).then_some((a, b))
}

pub fn show(app: &mut ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    let Some((a, b)) = pair(app.selection.pinned, app.prompts.len()) else {
        ui.heading("Compare two prompts");
        ui.label("Add a second prompt, e.g. \"a red circle\" and \"a red circle and no blue square\"; pin others with the A and B buttons in the prompt list.");
        return out;
    };
    let (Some(sa), Some(sb)) = (app.score_of(a).cloned(), app.score_of(b).cloned()) else {
        ui.weak("waiting for scores");
        return out;
    };
    let Some((tex, info)) = app.current_view() else {
        return out;
    };
    // The panes share the width the panel has before any row is laid out.
    let width = ui.available_width();
    heatmap::view_controls(app, ui);
    // Compare the same word in both prompts when possible.
    let words: Vec<String> = sa.tokenized.words.iter().map(|w| w.text.clone()).collect();
    let mut word = app
        .selection
        .compare_word
        .clone()
        .filter(|w| words.contains(w));
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
    if word != app.selection.compare_word {
        out.push(Command::CompareWord(word.clone()));
    }
    let (ta, tb) = (
        token_for(&sa, word.as_deref()),
        token_for(&sb, word.as_deref()),
    );
    let (ma, mb) = (patch_map(&sa.dcsm, ta), patch_map(&sb.dcsm, tb));
    let diff: Vec<f32> = ma.iter().zip(&mb).map(|(x, y)| x - y).collect();
    let scale = Scale::symmetric(ma.iter().chain(&mb));
    let diff_scale = Scale::symmetric(&diff);
    // One bar a line: side by side, the second's label ran past a narrow panel's edge.
    colour::colour_bar(ui, scale, "A and B share this scale");
    colour::colour_bar(ui, diff_scale, "A − B");
    let side = ((width - 40.0) / 3.0)
        .min(ui.available_height() - 80.0)
        .max(80.0);
    ui.horizontal_top(|ui| {
        for (title, s, map, sc, key) in [
            (
                format!("A: {}", sa.tokenized.text),
                Some(&sa),
                &ma,
                scale,
                Pane::A,
            ),
            (
                format!("B: {}", sb.tokenized.text),
                Some(&sb),
                &mb,
                scale,
                Pane::B,
            ),
            (
                "A − B".to_string(),
                None,
                &diff,
                diff_scale,
                Pane::Difference,
            ),
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
                    MapKey::Compare {
                        pane: key,
                        image: info.id,
                        a,
                        b,
                        ta,
                        tb,
                    },
                    map,
                    info.grid,
                    sc,
                    crop,
                );
            });
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::pair;

    #[test]
    fn the_view_compares_the_pins_else_the_first_two_prompts() {
        assert_eq!(pair([None, None], 3), Some((0, 1)));
        assert_eq!(pair([Some(2), None], 3), Some((2, 0)));
        assert_eq!(pair([Some(1), Some(2)], 3), Some((1, 2)));
        assert_eq!(pair([Some(1), Some(1)], 3), None, "the same prompt twice");
        assert_eq!(pair([Some(5), None], 3), Some((0, 1)), "a stale pin");
        assert_eq!(pair([None, None], 1), None);
    }
}
