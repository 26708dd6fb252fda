//! File dialogs that never block the UI: the system's dialog (rfd) is awaited on a thread of its
//! own; when none answers (no xdg-desktop-portal, no zenity) the built-in browser opens instead.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::browser::{Browser, Choose, Outcome};
use super::export::{self, What};

/// What a dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    OpenImages,
    ModelFolder,
    Export(What),
}

/// A dialog's answer for the app to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Chosen(Purpose, Vec<PathBuf>),
    /// The system dialog failed without showing anything; the built-in browser is open instead.
    NoSystemDialog,
}

/// The image files the dialogs offer.
pub const IMAGE_EXTENSIONS: [&str; 11] = [
    "png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "pnm", "tga", "ico",
];

/// A "cancel" sooner than this after opening cannot be a person's: no dialog was shown.
const TOO_FAST: Duration = Duration::from_millis(300);

type Paths = Option<Vec<PathBuf>>;

struct Pending {
    purpose: Purpose,
    answer: Receiver<Paths>,
    started: Instant,
}

/// The dialog in progress, if any, and whether the system's dialogs work here.
#[derive(Default)]
pub struct Dialogs {
    pending: Option<Pending>,
    browser: Option<(Purpose, Browser)>,
    /// Set once a system dialog failed silently: later dialogs go straight to the browser.
    system_failed: bool,
}

impl Dialogs {
    /// Whether a dialog is open (a second one waits for it to close).
    pub fn open(&self) -> bool {
        self.pending.is_some() || self.browser.is_some()
    }

    /// Opens a dialog for `purpose`; its answer arrives through `poll`.
    pub fn start(&mut self, purpose: Purpose, ctx: &egui::Context) {
        if self.open() {
            return;
        }
        if self.system_failed {
            self.open_browser(purpose);
            return;
        }
        // Made on the UI thread (macOS wants that), awaited on another (so the UI keeps drawing).
        let dialog = system_dialog(purpose);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("file dialog".into())
            .spawn(move || {
                // The receiver may be gone (the app closed); nothing is waiting then.
                let _ = tx.send(pollster::block_on(dialog));
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.pending = Some(Pending {
                    purpose,
                    answer: rx,
                    started: Instant::now(),
                })
            }
            Err(e) => {
                tracing::warn!("no thread for the file dialog ({e}); using the built-in browser");
                self.open_browser(purpose);
            }
        }
    }

    /// Once per frame: the system dialog's answer if it came, and the browser if it is open.
    pub fn poll(&mut self, ctx: &egui::Context) -> Option<Answer> {
        if let Some(p) = &self.pending {
            let answer = match p.answer.try_recv() {
                Ok(paths) => Some(paths),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => None,
            };
            let (purpose, elapsed) = (p.purpose, p.started.elapsed());
            self.pending = None;
            return match judge(answer, elapsed) {
                Judged::Chosen(paths) => Some(Answer::Chosen(purpose, paths)),
                Judged::Cancelled => None,
                Judged::NoDialog => {
                    self.system_failed = true;
                    self.open_browser(purpose);
                    Some(Answer::NoSystemDialog)
                }
            };
        }
        let (purpose, browser) = self.browser.as_mut()?;
        let outcome = browser.show(ctx)?;
        let purpose = *purpose;
        self.browser = None;
        match outcome {
            Outcome::Chosen(paths) => Some(Answer::Chosen(purpose, paths)),
            Outcome::Cancelled => None,
        }
    }

    fn open_browser(&mut self, purpose: Purpose) {
        let choose = match purpose {
            Purpose::OpenImages => Choose::Files {
                extensions: IMAGE_EXTENSIONS.iter().map(|x| x.to_string()).collect(),
            },
            Purpose::ModelFolder => Choose::Folder,
            Purpose::Export(what) => Choose::Save {
                name: export::file_name(what).0.to_string(),
            },
        };
        let start = std::env::var_os("HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        self.browser = Some((purpose, Browser::new(choose, &start)));
    }
}

/// What a system dialog's answer means.
#[derive(Debug, PartialEq)]
enum Judged {
    Chosen(Vec<PathBuf>),
    Cancelled,
    /// Nothing chosen, sooner than a person can cancel, or the dialog's thread died.
    NoDialog,
}

fn judge(answer: Option<Paths>, elapsed: Duration) -> Judged {
    match answer {
        Some(Some(paths)) if !paths.is_empty() => Judged::Chosen(paths),
        Some(_) if elapsed >= TOO_FAST => Judged::Cancelled,
        _ => Judged::NoDialog,
    }
}

/// The system's dialog for `purpose`, as a future that can be awaited on any thread.
fn system_dialog(purpose: Purpose) -> Pin<Box<dyn Future<Output = Paths> + Send>> {
    let dialog = rfd::AsyncFileDialog::new();
    match purpose {
        Purpose::OpenImages => {
            let pick = dialog.add_filter("images", &IMAGE_EXTENSIONS).pick_files();
            Box::pin(async move {
                pick.await
                    .map(|files| files.iter().map(|f| f.path().to_path_buf()).collect())
            })
        }
        Purpose::ModelFolder => {
            let pick = dialog.pick_folder();
            Box::pin(async move { pick.await.map(|f| vec![f.path().to_path_buf()]) })
        }
        Purpose::Export(what) => {
            let (name, ext) = export::file_name(what);
            let save = dialog
                .set_file_name(name)
                .add_filter(ext, &[ext])
                .save_file();
            Box::pin(async move { save.await.map(|f| vec![f.path().to_path_buf()]) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_empty_answer_means_no_dialog_was_shown() {
        let ms = Duration::from_millis;
        let paths = vec![PathBuf::from("/a.png")];
        assert_eq!(
            judge(Some(Some(paths.clone())), ms(5)),
            Judged::Chosen(paths)
        );
        assert_eq!(judge(Some(None), ms(4000)), Judged::Cancelled);
        assert_eq!(judge(Some(None), ms(20)), Judged::NoDialog);
        assert_eq!(judge(Some(Some(Vec::new())), ms(20)), Judged::NoDialog);
        assert_eq!(
            judge(None, ms(4000)),
            Judged::NoDialog,
            "the dialog's thread died"
        );
    }

    #[test]
    fn after_a_silent_failure_dialogs_open_the_browser_at_once() {
        let ctx = egui::Context::default();
        let mut d = Dialogs {
            system_failed: true,
            ..Dialogs::default()
        };
        d.start(Purpose::ModelFolder, &ctx);
        assert!(d.browser.is_some() && d.pending.is_none());
        assert!(d.open());
        d.start(Purpose::OpenImages, &ctx);
        assert!(
            matches!(d.browser, Some((Purpose::ModelFolder, _))),
            "a second dialog waits for the first"
        );
    }
}
