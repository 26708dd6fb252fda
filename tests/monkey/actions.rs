//! The monkey's actions on the app, and the files it throws at it.

use super::*;

pub(super) type R = rand_chacha::ChaCha8Rng;

pub(super) const WORDS: &str = "a| |red|blue|circle|square| and |no |left of|x";
/// Text a person (or a clipboard) can produce and a tokenizer may not expect: emoji (joined
/// too), right-to-left scripts and an override, NUL, combining marks, zero-width, CJK, controls.
pub(super) const ODD: &str = concat!(
    "🦀🎨 a red circle|👩‍👩‍👧|שלום עולם|مرحبا بالعالم|\u{202e}a red circle|\0|a\0red|",
    "e\u{301}\u{301}|\u{200b}\u{feff}|猫と犬|a\nred\tcircle\r|Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇"
);

/// One of the `|`-separated choices.
pub(super) fn pick<'a>(rng: &mut R, choices: &'a str) -> &'a str {
    let all: Vec<&str> = choices.split('|').collect();
    all[rng.random_range(0..all.len())]
}

/// What the monkey throws at the app.
pub(super) struct Files {
    pub(super) good: Vec<PathBuf>,
    /// No image the app can take: not one, empty, huge, cut short, missing, a folder.
    pub(super) bad: Vec<PathBuf>,
    pub(super) models: Vec<PathBuf>,
    /// A regular file. Tests run as root, whom permission bits (chmod 0o555) do not stop;
    /// nobody, root included, can create a file *under* a regular file.
    pub(super) blocked: PathBuf,
    pub(super) out: PathBuf,
    pub(super) _dir: tempfile::TempDir,
}

pub(super) fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let good = ["wide", "tall", "exact40", "exact60"].map(|n| format!("images/{n}.png"));
    let good = good.map(|n| ui::fixture(&n));
    let wide = std::fs::read(&good[0]).unwrap();
    for (name, bytes) in [
        ("notes.png", b"plain text, not a picture".to_vec()),
        ("empty.png", Vec::new()),
        ("huge.png", common::png_claiming(20_000, 20_000)),
        ("cut.png", wide[..wide.len() / 3].to_vec()),
        ("blocked", b"a file, not a folder".to_vec()),
    ] {
        std::fs::write(p(name), bytes).unwrap();
    }
    std::fs::create_dir(p("folder.png")).unwrap();
    std::fs::create_dir(p("out")).unwrap();
    let config = std::fs::read_to_string(ui::fixture("tiny_quick_gelu/config.json")).unwrap();
    let edit = |key: &str, from: &str, to: &str| {
        let key = format!("\"{key}\": ");
        config.replace(&format!("{key}{from}"), &format!("{key}{to}"))
    };
    let weights = ui::fixture("tiny_quick_gelu/model.safetensors");
    let mut models = vec![p("no such model"), p("notes.png")];
    for (name, config, weights) in [
        ("garbage", "{\"this is\": not json".to_string(), &weights),
        ("shape", r#"{"projection_dim": "eight"}"#.into(), &weights),
        ("wider", edit("hidden_size", "48", "64"), &weights),
        ("heads", edit("num_attention_heads", "3", "5"), &weights),
        ("patch 0", edit("patch_size", "8", "0"), &weights),
        ("bad weights", config.clone(), &p("notes.png")),
        ("dangling weights", config.clone(), &p("none")),
        ("no config", String::new(), &weights),
    ] {
        let d = p(&format!("model {name}"));
        std::fs::create_dir(&d).unwrap();
        if !config.is_empty() {
            std::fs::write(d.join("config.json"), config).unwrap();
        }
        std::os::unix::fs::symlink(weights, d.join("model.safetensors")).unwrap();
        models.push(d);
    }
    let bad = [
        "notes.png",
        "empty.png",
        "huge.png",
        "cut.png",
        "gone.png",
        "folder.png",
    ];
    Files {
        good: good.to_vec(),
        bad: bad.map(p).to_vec(),
        models,
        blocked: p("blocked"),
        out: p("out"),
        _dir: dir,
    }
}

/// A widget whose label contains `needle` is on the screen.
pub(super) fn assert_shown(h: &H, needle: &str) {
    let notices: Vec<&String> = h.state().notices.iter().map(|n| &n.text).collect();
    let shown = ui::on_screen(h, needle);
    assert!(shown, "`{needle}` not on screen: {notices:?}");
}

/// Clicks one of the on-screen widgets labelled `label` that `keep` accepts; says which.
pub(super) fn click(h: &H, rng: &mut R, label: &str, keep: impl Fn(Rect) -> bool) -> String {
    let rects = h.query_all_by_label(label).map(|n| n.rect());
    let found: Vec<Rect> = rects
        .filter(|r| SCREEN.contains_rect(*r) && keep(*r))
        .collect();
    let hit = found.choose(rng).inspect(|r| click_at(h, r.center()));
    format!("{label} at {:?}", hit.map(|r| r.center()))
}

pub(super) fn any(_: Rect) -> bool {
    true
}

/// Whether a rectangle is in the prompt panel (right of the "+ Add prompt" button's left edge).
pub(super) fn in_prompts(h: &H) -> impl Fn(Rect) -> bool {
    let add = h.query_all_by_label("+ Add prompt").next();
    let left = add.map_or(f32::MAX, |n| n.rect().min.x);
    move |r| r.min.x >= left - 1.0
}

pub(super) fn in_top_bar(r: Rect) -> bool {
    r.max.y < 40.0
}

/// Steps until the worker has answered; a panic the worker caught must not have happened.
pub(super) fn settle(h: &mut H) {
    ui::settle(h);
    let mut notices = h.state().notices.iter().map(|n| &n.text);
    let internal = notices.find(|t| t.contains("internal error"));
    assert!(internal.is_none(), "the worker panicked: {internal:?}");
}

/// Typed, pasted (long too) or deleted (several ways) text in a random prompt.
pub(super) fn edit_text(h: &mut H, rng: &mut R) -> String {
    let fields = h.query_all_by_role(Role::TextInput).count();
    let k = rng.random_range(0..fields.max(1));
    if let Some(field) = h.query_all_by_role(Role::TextInput).nth(k) {
        field.focus();
    }
    h.step();
    let short = h.state().prompts.get(k).is_some_and(|p| p.len() < 2_000);
    let how = rng.random_range(0..10);
    let text = match how {
        0 if short => "a red circle ".repeat(rng.random_range(10..150)),
        0..3 => pick(rng, ODD).to_string(),
        _ => pick(rng, WORDS).to_string(),
    };
    match how {
        0..2 => h.event(Event::Paste(text.clone())),
        2..5 => h.event(Event::Text(text.clone())),
        7 => h.key_press_modifiers(Modifiers::COMMAND, Key::A),
        8 => h.event(Event::Cut),
        _ => {}
    }
    let presses = match how {
        5 => vec![Key::Backspace; rng.random_range(1..12)],
        6 => vec![Key::Delete; rng.random_range(1..6)],
        7 => vec![Key::Backspace],
        9 => vec![Key::Home, Key::Delete, Key::End, Key::Backspace],
        _ => Vec::new(),
    };
    presses.into_iter().for_each(|key| h.key_press(key));
    let shown: String = text.chars().take(20).collect();
    format!("way {how} in field {k}: {shown:?}")
}

/// The colour scale, toggled with its buttons (in a view that has them).
pub(super) fn colour_scale(h: &mut H, rng: &mut R) -> String {
    let label = match h.state().settings.scale {
        ScaleMode::Locked => "per-map range",
        ScaleMode::PerMap => "locked scale",
    };
    if h.query_all_by_label(label).next().is_none() {
        click(h, rng, "Overlay", in_top_bar);
        h.step();
    }
    click(h, rng, label, any)
}

/// A good image or a bad one, dropped on the window or chosen as in a dialog; a bad one must
/// end failed with its reason on screen (or, dropped and unreadable, not be added, and say so).
pub(super) fn add_image(h: &mut H, rng: &mut R, f: &Files, bad: bool) -> String {
    let first_new = h.state().gallery.next_id;
    let path = if bad { &f.bad } else { &f.good }.choose(rng).unwrap();
    let dropped = rng.random_bool(0.5);
    if dropped {
        drop_file(h, path);
    } else {
        h.state_mut().add_path(path.clone());
    }
    if bad {
        settle(h);
        let new = h.state().gallery.images.iter().find(|e| e.id >= first_new);
        match new.map(|e| &e.status) {
            Some(ImageStatus::Failed(reason)) => assert_shown(h, reason),
            // With no model loaded nothing is decoded: it is judged when one loads.
            Some(ImageStatus::NoModel) if h.state().model.info.is_none() => {}
            None if dropped && !path.is_file() => assert_shown(h, "could not read the dropped"),
            _ => panic!("{} was not refused", path.display()),
        }
    }
    format!(
        "{} {}",
        ["added", "dropped"][usize::from(dropped)],
        path.display()
    )
}

/// Clicks an image's name in the gallery (scrolled into view first).
pub(super) fn show_image(h: &mut H, rng: &mut R) -> String {
    let Some(name) = h.state().gallery.images.choose(rng).map(|e| e.name.clone()) else {
        return "none".into();
    };
    let k = rng.random_range(0..h.query_all_by_label(&name).count().max(1));
    if let Some(n) = h.query_all_by_label(&name).nth(k) {
        n.scroll_to_me();
    }
    h.step();
    let rect = h.query_all_by_label(&name).nth(k).map(|n| n.rect());
    if let Some(r) = rect.filter(|r| SCREEN.contains_rect(*r)) {
        click_at(h, r.center());
    }
    name
}

/// The good model: once it is loaded, every good image (fixtures, demo scenes) is ready again.
pub(super) fn good_model(h: &mut H, f: &Files) -> String {
    let tiny = ModelSource::Folder(ui::fixture("tiny_quick_gelu"));
    h.state_mut().load_model(tiny.clone());
    settle(h);
    assert_eq!(h.state().model.source, Some(tiny), "the model loaded");
    assert!(h.state().model.loading.is_none(), "nothing loading");
    assert_shown(h, "model: tiny_quick_gelu");
    for e in &h.state().gallery.images {
        let good = e.path().is_none_or(|p| f.good.contains(p));
        match (good, &e.status) {
            (true, ImageStatus::Failed(m)) => {
                panic!("{} still fails with a good model loaded: {m}", e.name)
            }
            (_, ImageStatus::NoModel) => panic!("{} still waits for a model", e.name),
            _ => {}
        }
    }
    "tiny_quick_gelu".into()
}

/// A broken model folder, as the folder dialog would answer (kittest cannot drive that dialog);
/// now and then the good one is picked at once, while the broken one may still be loading.
pub(super) fn broken_model(h: &mut H, rng: &mut R, f: &Files) -> String {
    let dir = f.models.choose(rng).unwrap();
    h.state_mut().load_model(ModelSource::Folder(dir.clone()));
    let name = dir.display().to_string();
    if rng.random_bool(0.2) {
        good_model(h, f);
        return format!("{name}, then at once the good one");
    }
    settle(h);
    assert_shown(h, &format!("could not load the model {name}"));
    if rng.random_bool(0.7) {
        good_model(h, f);
    }
    name
}

/// An export as a save dialog's answer asks for it: to a path nobody can write, or to a folder.
pub(super) fn export_to(h: &mut H, rng: &mut R, f: &Files) -> String {
    let whats = [What::Overlay, What::Grid, What::MatrixPng, What::MatrixCsv];
    let what = *whats.choose(rng).unwrap();
    let blocked = rng.random_bool(0.6);
    let path = if blocked { &f.blocked } else { &f.out }.join(export::file_name(what).0);
    let _ = std::fs::remove_file(&path);
    export::save(h.state_mut(), what, &path);
    h.step();
    // Written, or the failure is on screen (the "saved" note may give way to newer notes).
    let shown = path.display().to_string();
    if !path.is_file() {
        assert_shown(h, &format!("could not save {shown}"));
    }
    assert!(!blocked || !path.exists(), "{shown} was written");
    shown
}
