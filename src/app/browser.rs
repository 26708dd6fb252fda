//! A small file browser drawn with egui, for desktops where no system file dialog answers (no
//! xdg-desktop-portal and no zenity, as on many plain window managers).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What the browser is choosing.
#[derive(Debug, Clone, PartialEq)]
pub enum Choose {
    /// Image files (several at once), by extension.
    Files { extensions: Vec<String> },
    /// One folder (a model folder).
    Folder,
    /// A file name to save under, in the folder shown.
    Save { name: String },
}

/// What the user did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Chosen(Vec<PathBuf>),
    Cancelled,
}

/// One entry of the folder shown.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    path: PathBuf,
    name: String,
    dir: bool,
}

/// The browser's state: the folder shown, its entries and the selection.
#[derive(Debug)]
pub struct Browser {
    choose: Choose,
    dir: PathBuf,
    entries: Vec<Entry>,
    chosen: BTreeSet<PathBuf>,
    /// The path field: type a folder and press Enter to go there.
    typed: String,
    problem: Option<String>,
}

impl Browser {
    pub fn new(choose: Choose, start: &Path) -> Self {
        let mut b = Self {
            choose,
            dir: start.to_path_buf(),
            entries: Vec::new(),
            chosen: BTreeSet::new(),
            typed: String::new(),
            problem: None,
        };
        b.go(start.to_path_buf());
        b
    }

    /// Shows `dir` (an unreadable folder is reported and the browser stays where it was).
    fn go(&mut self, dir: PathBuf) {
        match list(&dir, &self.choose) {
            Ok(entries) => {
                self.entries = entries;
                self.dir = dir;
                self.chosen.clear();
                self.problem = None;
            }
            Err(e) => self.problem = Some(format!("cannot open {}: {e}", dir.display())),
        }
        self.typed = self.dir.display().to_string();
    }

    /// The browser as a window; `Some` once the user has chosen or cancelled.
    pub fn show(&mut self, ctx: &egui::Context) -> Option<Outcome> {
        let mut outcome = None;
        let title = match &self.choose {
            Choose::Files { .. } => "Open images",
            Choose::Folder => "Choose a model folder",
            Choose::Save { .. } => "Save as",
        };
        egui::Window::new(title)
            .collapsible(false)
            .default_size([560.0, 420.0])
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| outcome = self.contents(ui));
        outcome
    }

    fn contents(&mut self, ui: &mut egui::Ui) -> Option<Outcome> {
        let mut go = None;
        ui.horizontal(|ui| {
            if ui.button("Up").on_hover_text("The parent folder").clicked() {
                go = self.dir.parent().map(Path::to_path_buf);
            }
            let label = ui.label("folder:");
            let field = ui
                .add(egui::TextEdit::singleline(&mut self.typed).desired_width(f32::INFINITY))
                .labelled_by(label.id)
                .on_hover_text("Type a folder and press Enter to go there");
            if field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                go = Some(PathBuf::from(self.typed.trim()));
            }
        });
        if let Some(p) = &self.problem {
            ui.colored_label(ui.visuals().error_fg_color, p);
        }
        let multiple = matches!(self.choose, Choose::Files { .. });
        egui::ScrollArea::vertical()
            .max_height(300.0)
            .auto_shrink([false, false])
            .show(ui, |ui| {
                for e in &self.entries {
                    let label = if e.dir {
                        format!("{}/", e.name)
                    } else {
                        e.name.clone()
                    };
                    let selected = self.chosen.contains(&e.path);
                    let r = ui.selectable_label(selected, label);
                    if e.dir && r.double_clicked() {
                        go = Some(e.path.clone());
                    } else if r.clicked() {
                        if e.dir {
                            go = Some(e.path.clone());
                        } else if multiple && ui.input(|i| i.modifiers.command || i.modifiers.shift)
                        {
                            if !self.chosen.remove(&e.path) {
                                self.chosen.insert(e.path.clone());
                            }
                        } else {
                            self.chosen = BTreeSet::from([e.path.clone()]);
                            if let Choose::Save { name } = &mut self.choose {
                                name.clone_from(&e.name);
                            }
                        }
                    }
                }
                if self.entries.is_empty() {
                    ui.weak("nothing to choose here");
                }
            });
        if let Some(dir) = go {
            self.go(dir);
        }
        ui.separator();
        self.buttons(ui)
    }

    fn buttons(&mut self, ui: &mut egui::Ui) -> Option<Outcome> {
        let mut outcome = None;
        ui.horizontal(|ui| {
            let action = match &mut self.choose {
                Choose::Files { .. } => {
                    ui.label(format!(
                        "{} chosen (Ctrl-click for more)",
                        self.chosen.len()
                    ));
                    let open = ui.add_enabled(!self.chosen.is_empty(), egui::Button::new("Open"));
                    open.clicked()
                        .then(|| self.chosen.iter().cloned().collect())
                }
                Choose::Folder => ui
                    .button("Choose this folder")
                    .on_hover_text(self.dir.display().to_string())
                    .clicked()
                    .then(|| vec![self.dir.clone()]),
                Choose::Save { name } => {
                    let label = ui.label("file name:");
                    ui.text_edit_singleline(name).labelled_by(label.id);
                    let ok = !name.trim().is_empty();
                    let save = ui.add_enabled(ok, egui::Button::new("Save"));
                    save.clicked().then(|| vec![self.dir.join(name.trim())])
                }
            };
            if let Some(paths) = action {
                outcome = Some(Outcome::Chosen(paths));
            }
            if ui.button("Cancel").clicked() {
                outcome = Some(Outcome::Cancelled);
            }
        });
        outcome
    }
}

/// The folders and the files `choose` can take in `dir`, folders first, each sorted by name
/// (hidden ones left out).
fn list(dir: &Path, choose: &Choose) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let Ok(item) = item else { continue };
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // Follows symlinks (the hub's cache links snapshots to blobs).
        let dir = path.is_dir();
        let wanted = dir
            || match choose {
                Choose::Files { extensions } => path
                    .extension()
                    .map(|x| x.to_string_lossy().to_lowercase())
                    .is_some_and(|x| extensions.contains(&x)),
                Choose::Folder => false,
                Choose::Save { .. } => true,
            };
        if wanted {
            entries.push(Entry { path, name, dir });
        }
    }
    entries.sort_by(|a, b| b.dir.cmp(&a.dir).then_with(|| a.name.cmp(&b.name)));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui_kittest::kittest::Queryable;
    use egui_kittest::Harness;

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.png", "a.JPG", "notes.txt", ".hidden.png"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/c.png"), b"x").unwrap();
        dir
    }

    #[test]
    fn folders_first_then_the_wanted_files_by_name() {
        let dir = folder();
        let images = Choose::Files {
            extensions: vec!["png".into(), "jpg".into()],
        };
        let names: Vec<String> = list(dir.path(), &images)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["sub", "a.JPG", "b.png"]);
        let folders = list(dir.path(), &Choose::Folder).unwrap();
        assert_eq!(folders.len(), 1);
        assert!(list(&dir.path().join("missing"), &Choose::Folder).is_err());
    }

    #[test]
    fn choosing_files_in_a_subfolder_and_cancelling() {
        let dir = folder();
        let choose = Choose::Files {
            extensions: vec!["png".into()],
        };
        let browser = Browser::new(choose, dir.path());
        let mut h = Harness::new_ui_state(
            |ui, (b, out): &mut (Browser, Option<Outcome>)| {
                if let Some(o) = b.show(ui.ctx()) {
                    *out = Some(o);
                }
            },
            (browser, None),
        );
        h.get_by_label("sub/").click();
        h.run();
        h.get_by_label("c.png").click();
        h.run();
        h.get_by_label("Open").click();
        h.run();
        assert_eq!(
            h.state().1,
            Some(Outcome::Chosen(vec![dir.path().join("sub/c.png")]))
        );
        h.state_mut().1 = None;
        h.get_by_label("Cancel").click();
        h.run();
        assert_eq!(h.state().1, Some(Outcome::Cancelled));
    }

    #[test]
    fn an_unreadable_folder_is_reported_and_the_browser_stays() {
        let dir = folder();
        let mut b = Browser::new(Choose::Folder, dir.path());
        b.go(dir.path().join("gone"));
        assert_eq!(b.dir, dir.path());
        assert!(b.problem.as_deref().is_some_and(|p| p.contains("gone")));
    }
}
