//! What a panel asks of the app. Panels return `Commands`; the app applies them in order at the end
//! of the frame (as egui_demo_app's `wrap_app.rs` does), so no panel changes what another panel of
//! the same frame reads.

use super::dialogs::Purpose;
use super::export::What;
use super::ClipscopeApp;
use crate::engine::ModelSource;
use crate::worker::ImageId;

/// One thing a panel asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    OpenImages,
    PasteImage,
    AddDemos,
    ShowImage(ImageId),
    RemoveImage(ImageId),
    LoadModel(ModelSource),
    PickModelFolder,
    Export(What),
    SelectPrompt(usize),
    /// Prompt `i`'s text changed (the text field edits the prompt list in place).
    PromptEdited(usize),
    TogglePin {
        slot: usize,
        prompt: usize,
    },
    MovePromptUp(usize),
    RemovePrompt(usize),
    AddPrompt,
    StartLesson(usize),
    SelectToken(usize),
    /// The pointer is over a token (chips) this frame.
    HoverToken(usize),
    /// The pointer is over a patch (image or matrix row) this frame, 0-based, CLS excluded.
    HoverPatch(usize),
    CompareWord(Option<String>),
    MaskOther(usize),
    DismissNotice(usize),
}

/// The commands of one panel (or one frame), in the order they were asked for.
#[must_use = "commands do nothing until the app applies them"]
#[derive(Debug, Default, PartialEq)]
pub struct Commands(Vec<Command>);

impl Commands {
    pub fn push(&mut self, command: Command) {
        self.0.push(command);
    }

    /// Adds another panel's commands after these.
    pub fn append(&mut self, mut other: Commands) {
        self.0.append(&mut other.0);
    }
}

impl From<Option<Command>> for Commands {
    fn from(c: Option<Command>) -> Self {
        Self(c.into_iter().collect())
    }
}

impl ClipscopeApp {
    /// Applies a frame's commands in order. What is under the pointer is exactly what this
    /// frame's panels reported; when the selection moved, one more frame shows it.
    pub fn apply(&mut self, commands: Commands) {
        let before = self.selection.clone();
        self.selection.clear_hover();
        for command in commands.0 {
            self.apply_one(command);
        }
        if self.selection != before {
            self.ctx.request_repaint();
        }
    }

    fn apply_one(&mut self, command: Command) {
        match command {
            Command::OpenImages => self.open_dialog(),
            Command::PasteImage => self.paste_image(),
            Command::AddDemos => self.add_demos(),
            Command::ShowImage(id) => self.set_current(id),
            Command::RemoveImage(id) => self.remove_image(id),
            Command::LoadModel(source) => self.load_model(source),
            Command::PickModelFolder => self.dialogs.start(Purpose::ModelFolder, &self.ctx),
            Command::Export(what) => self.dialogs.start(Purpose::Export(what), &self.ctx),
            Command::SelectPrompt(i) => self.selection.prompt = i,
            Command::PromptEdited(i) => {
                self.selection.prompt = i;
                self.mark_dirty();
            }
            Command::TogglePin { slot, prompt } => {
                if self.selection.toggle_pin(slot, prompt) {
                    self.settings.view = super::state::View::Compare;
                }
            }
            Command::MovePromptUp(i) => {
                if i > 0 && i < self.prompts.len() {
                    self.prompts.swap(i, i - 1);
                    self.selection.prompts_changed(self.prompts.len());
                    self.mark_dirty();
                }
            }
            Command::RemovePrompt(i) => self.remove_prompt(i),
            Command::AddPrompt => self.add_prompt(String::new()),
            Command::StartLesson(i) => self.start_lesson(i),
            Command::SelectToken(t) => self.selection.token = Some(t),
            Command::HoverToken(t) => self.selection.hovered_token = Some(t),
            Command::HoverPatch(p) => self.selection.hovered_patch = Some(p),
            Command::CompareWord(w) => self.selection.compare_word = w,
            Command::MaskOther(i) => self.selection.mask_other = Some(i),
            Command::DismissNotice(i) => {
                if i < self.notices.len() {
                    self.notices.remove(i);
                }
            }
        }
    }
}
