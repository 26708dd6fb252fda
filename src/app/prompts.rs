//! The prompt list (edit, add, remove, reorder, pin for compare) and the score bars beneath it.

use super::command::{Command, Commands};
use super::{scores, ClipscopeApp};
use crate::engine::PromptScore;

/// The prompt list; its text fields edit `app.prompts` in place, everything else is a command.
pub fn show(app: &mut ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = Commands::default();
    egui::Panel::right("prompts")
        .resizable(true)
        .default_size(430.0)
        .min_size(300.0)
        .max_size(640.0)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("Prompts");
                if app.busy() {
                    ui.spinner().on_hover_text("the model is working");
                }
            });
            let mut action = None;
            let n = app.prompts.len();
            for i in 0..n {
                ui.horizontal(|ui| {
                    let selected = app.selection.prompt == i;
                    if ui
                        .selectable_label(selected, format!("{}", i + 1))
                        .on_hover_text("Show this prompt's maps")
                        .clicked()
                    {
                        action = Some(Command::SelectPrompt(i));
                    }
                    // Buttons from the right edge, the text field takes what is left.
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui
                            .small_button("x")
                            .on_hover_text("Remove this prompt")
                            .clicked()
                        {
                            action = Some(Command::RemovePrompt(i));
                        }
                        if ui.small_button("up").on_hover_text("Move up").clicked() {
                            action = Some(Command::MovePromptUp(i));
                        }
                        for (slot, name) in [(1usize, "B"), (0, "A")] {
                            let pinned = app.selection.pinned[slot] == Some(i);
                            if ui
                                .selectable_label(pinned, name)
                                .on_hover_text(format!("Pin as {name} for the compare view"))
                                .clicked()
                            {
                                action = Some(Command::TogglePin { slot, prompt: i });
                            }
                        }
                        let edit = egui::TextEdit::singleline(&mut app.prompts[i])
                            .desired_width(ui.available_width())
                            .hint_text("type a prompt");
                        let r = ui
                            .add(edit)
                            .on_hover_text("Edit: every keystroke re-scores");
                        if r.changed() {
                            action = Some(Command::PromptEdited(i));
                        }
                        if r.gained_focus() {
                            action = Some(Command::SelectPrompt(i));
                        }
                    });
                });
                if app.prompts[i].trim().is_empty() {
                    ui.colored_label(ui.visuals().warn_fg_color, "  empty prompt: not scored");
                } else if let Some(s) = app.score_of(i) {
                    if s.tokenized.truncated {
                        ui.colored_label(
                            ui.visuals().warn_fg_color,
                            format!(
                                "  truncated: {} tokens, the model reads {}",
                                s.tokenized.full_len,
                                s.tokenized.ids.len()
                            ),
                        );
                    }
                    pipeline_notes(ui, s);
                }
            }
            ui.horizontal(|ui| {
                if ui
                    .button("+ Add prompt")
                    .on_hover_text("Add an empty prompt")
                    .clicked()
                {
                    action = Some(Command::AddPrompt);
                }
                ui.menu_button("Starters", |ui| {
                    ui.label("One lesson per scene: its image and prompts");
                    for (i, d) in super::demo::scenes().iter().enumerate() {
                        if ui
                            .button(d.lesson)
                            .on_hover_text(format!("{}\n{}", d.point, d.prompts.join("\n")))
                            .clicked()
                        {
                            action = Some(Command::StartLesson(i));
                            ui.close();
                        }
                    }
                })
                .response
                .on_hover_text("Lessons: recognition, binding, spatial, negation and more");
            });
            out.append(action.into());
            ui.separator();
            scores::show(app, ui);
        });
    out
}

impl ClipscopeApp {
    pub fn add_prompt(&mut self, text: String) {
        self.prompts.push(text);
        self.selection.prompt = self.prompts.len() - 1;
        self.mark_dirty();
    }

    pub fn remove_prompt(&mut self, i: usize) {
        if i < self.prompts.len() {
            self.prompts.remove(i);
            self.selection.prompts_changed(self.prompts.len());
            self.mark_dirty();
        }
    }
}

/// What the model did to a prompt on its way in: a typed end-of-text token, the reference's
/// text clean-up, the DCSM paper's caption rewriting.
fn pipeline_notes(ui: &mut egui::Ui, s: &PromptScore) {
    let t = &s.tokenized;
    if t.pools_early() {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "  pooled at the <|endoftext|> typed at token {}: the words after it do not \
                 reach the CLIP score",
                t.eos_index()
            ),
        );
    }
    if let Some(c) = &t.cleaned {
        ui.weak(format!("  the model reads: {c}")).on_hover_text(
            "OpenAI's tokenizer cleans text first (ftfy, HTML entities), as this model's \
             reference does",
        );
    }
    if let Some(d) = &s.dcsm_text {
        ui.weak(format!("  the DCSM scorer reads: {d}"))
            .on_hover_text(
                "The DCSM paper's caption rewriting: behind → above, in front of → below, \
             top → above, bottom → below",
            );
    }
}
