//! The command-line contract: `map` and `score` outputs, and one clear line for bad input.

mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(path: &str) -> PathBuf {
    common::parity(path)
}

fn clipscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipscope"))
        .args(args)
        // Never the network: an endpoint on loopback that refuses at once, and an empty cache.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env(
            "HF_HOME",
            std::env::temp_dir().join("clipscope-tests-empty-hf-home"),
        )
        // Errors are one line unless a backtrace is asked for.
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("the binary runs")
}

fn model() -> String {
    fixture("tiny_quick_gelu").display().to_string()
}

fn image() -> String {
    fixture("images/wide.png").display().to_string()
}

#[test]
fn map_writes_the_promised_json_and_one_png_per_token() {
    let out = tempfile::tempdir().unwrap();
    let o = clipscope(&[
        "map",
        "--model",
        &model(),
        "--image",
        &image(),
        "--prompt",
        "a red circle above a blue square",
        "--prompt",
        "a dog",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("map.json")).unwrap())
            .unwrap();
    assert!(doc["model"].is_string() && doc["image"].is_string());
    assert_eq!(doc["grid"], serde_json::json!([5, 5]));
    assert_eq!(doc["crop"].as_array().unwrap().len(), 4);
    let prompts = doc["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 2);
    let mut pngs = 0;
    for p in prompts {
        let ids = p["token_ids"].as_array().unwrap();
        assert_eq!(ids.first().unwrap(), 49406);
        assert_eq!(ids.last().unwrap(), 49407);
        assert_eq!(p["tokens"].as_array().unwrap().len(), ids.len());
        assert_eq!(p["truncated"], false);
        let dcsm = p["dcsm"].as_array().unwrap();
        assert_eq!(dcsm.len(), 1 + 25);
        assert!(dcsm
            .iter()
            .all(|row| row.as_array().unwrap().len() == ids.len()));
        let cos = p["clip_cosine"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&cos));
        // The pooled cosine is the DCSM's CLS row at the EOS column.
        let cls_eos = dcsm[0]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_f64()
            .unwrap();
        assert!((cos - cls_eos).abs() < 1e-6);
        pngs += ids.len();
    }
    let written = std::fs::read_dir(out.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "png")
        })
        .count();
    assert_eq!(written, pngs);
}

#[test]
fn map_takes_a_source_a_resolution_and_tiles_and_says_which() {
    let out = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "map",
            "--model",
            &model(),
            "--image",
            &image(),
            "--prompt",
            "a red circle",
            "--prompt",
            "a dog",
            "--out",
            out.path().to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        clipscope(&refs)
    };
    let o = run(&["--source", "clearclip", "--surgery", "--tiles"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("map.json")).unwrap())
            .unwrap();
    assert_eq!(doc["source"], "clearclip + surgery, tiles");
    assert_eq!(doc["view"]["source"], "clearclip");
    // wide.png (97×61) at 40 px: windows at 0, 20 and 23 of a 63-px-long image, 5 × 8 cells.
    assert_eq!(doc["grid"], serde_json::json!([5, 8]));
    assert_eq!(doc["window_offsets"], serde_json::json!([0, 20, 23]));
    assert_eq!(doc["windows"].as_array().unwrap().len(), 3);
    let dcsm = doc["prompts"][0]["dcsm"].as_array().unwrap();
    assert_eq!(dcsm.len(), 1 + 40);
    let o = run(&["--resolution", "80", "--source", "layer:1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("map.json")).unwrap())
            .unwrap();
    assert_eq!(doc["grid"], serde_json::json!([10, 10]));
    assert_eq!(doc["source"], "layer:1, 80 px");
    for (bad, says) in [
        (&["--resolution", "81"][..], "multiple of the patch"),
        (&["--source", "layer:7"][..], "layer:7 does not exist"),
        (&["--source", "gradcam"][..], "unknown map source"),
    ] {
        let o = run(bad);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "{bad:?}: {err}");
    }
}

#[test]
fn score_json_has_cosines_and_probabilities() {
    let o = clipscope(&[
        "score",
        "--model",
        &model(),
        "--image",
        &image(),
        "--json",
        "--prompt",
        "a photo",
        "--prompt",
        "a drawing",
        "--prompt",
        "a small green triangle to the left of a big yellow star and below a purple cross on grey",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let prompts = doc["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 3);
    let total: f64 = prompts
        .iter()
        .map(|p| p["clip_prob"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-5);
    assert_eq!(prompts[0]["text"], "a photo");
    assert_eq!(
        prompts[2]["truncated"], true,
        "context 20 cuts the long prompt"
    );
    assert!(prompts.iter().all(|p| p["clip_cosine"].is_f64()));
}

#[test]
fn score_json_of_the_embedded_model_has_dcsm_and_smartclip_fields() {
    let scene =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/red-circle-above-blue-square.png");
    let o = clipscope(&[
        "score",
        "--image",
        &scene.display().to_string(),
        "--json",
        "--prompt",
        "a red circle above a blue square",
        "--prompt",
        "a blue square above a red circle",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["dcsm"]["note"].as_str().unwrap().contains("z-scored"));
    let prompts = doc["prompts"].as_array().unwrap();
    for p in prompts {
        assert!(p["dcsm_score"].is_f64());
        assert!(p["smartclip_score"].is_f64());
        let kept = p["mask_kept"].as_f64().unwrap();
        assert!(kept > 0.0 && kept < 1.0, "{kept}");
        let mask = p["mask"].as_array().unwrap();
        assert_eq!(mask.len(), 128);
        let on = mask.iter().filter(|v| v.as_f64().unwrap() >= 0.5).count();
        assert!((on as f64 / 128.0 - kept).abs() < 1e-6);
    }
    assert_eq!(prompts[0]["dcsm_functional_words"][0]["word"], "above");
    // The trained scorer tells the relation apart on the demo scene; plain CLIP barely does.
    assert!(prompts[0]["dcsm_score"].as_f64() > prompts[1]["dcsm_score"].as_f64());
}

/// Fails with a non-zero code and exactly one line on stderr containing `needle`.
#[test]
fn soak_prints_memory_readings_while_it_drives_the_worker() {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("soak.json");
    let o = clipscope(&[
        "soak",
        "--model",
        &model(),
        "--minutes",
        "0.04",
        "--every",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resident memory:"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let readings = doc["readings"].as_array().unwrap();
    assert!(readings.len() >= 3, "{readings:?}");
    let last = readings.last().unwrap();
    assert!(last["jobs"].as_u64().unwrap() > 10, "{last}");
    assert!(last["images_added"].as_u64().unwrap() >= 1);
    assert!(readings.iter().all(|r| r["rss_mb"].as_f64().unwrap() > 1.0));
}

fn fails_with(args: &[&str], needle: &str) {
    let o = clipscope(args);
    assert!(!o.status.success(), "should fail: {args:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one line expected, got: {err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn bad_inputs_exit_non_zero_with_one_clear_line() {
    let m = model();
    // A config that does not fit its weights: candle's shape error, without its backtrace.
    let picture = image();
    let bad = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "preprocessor_config.json"] {
        std::fs::copy(Path::new(&m).join(f), bad.path().join(f)).unwrap();
    }
    let config = std::fs::read_to_string(Path::new(&m).join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["vision_config"]["intermediate_size"] = serde_json::json!(48);
    std::fs::write(bad.path().join("config.json"), config.to_string()).unwrap();
    fails_with(
        &[
            "score",
            "--model",
            bad.path().to_str().unwrap(),
            "--image",
            &picture,
            "--prompt",
            "x",
        ],
        "fc1",
    );
    fails_with(
        &[
            "score",
            "--model",
            &m,
            "--image",
            "/no/such.png",
            "--prompt",
            "x",
        ],
        "does not exist",
    );
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("notes.png");
    std::fs::write(&fake, "this is text, not a picture").unwrap();
    fails_with(
        &[
            "score",
            "--model",
            &m,
            "--image",
            fake.to_str().unwrap(),
            "--prompt",
            "x",
        ],
        "not an image",
    );
    fails_with(
        &[
            "score",
            "--model",
            &m,
            "--image",
            &image(),
            "--prompt",
            "  ",
        ],
        "empty",
    );
    fails_with(
        &[
            "score",
            "--model",
            "/no/such/model",
            "--image",
            &image(),
            "--prompt",
            "x",
        ],
        "does not exist",
    );
    fails_with(
        &[
            "score",
            "--model",
            "openai/clip-vit-base-patch32",
            "--image",
            &image(),
            "--prompt",
            "x",
        ],
        "--model <DIR>",
    );
}
