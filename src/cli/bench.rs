//! `clipscope bench`: engine timings (load, image/text encode, DCSM, scorer, SmartCLIP mask,
//! a prompt edit) on random-weight models at real shapes, with peak memory, as JSON.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::Serialize;
use std::path::{Path, PathBuf};

use super::machine;
use super::measure::{peak_rss, time, Row, PROMPTS};
use crate::dcsm::scorer::{Replacement, Scorer};
use crate::engine::{Clip, ClipConfig, LoadedModel};
use crate::train::dcsm::{self as train_dcsm, Options as ScorerOptions};

const MODELS: [&str; 4] = ["vit-b32", "vit-b16", "default", "siglip-b16"];

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Comma-separated: vit-b32, vit-b16, default, siglip-b16 (SigLIP base patch16-224).
    #[arg(long, default_value = "vit-b32,vit-b16,default")]
    pub models: String,
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed runs per measure (model loads: a quarter of this, at least 3).
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Where random-weight models are written once and reused.
    #[arg(long, value_name = "DIR", default_value = "target/bench-models")]
    pub cache: PathBuf,
    /// Internal: measure one model in this process (the parent runs one process per model so
    /// each peak-memory reading is that model's alone).
    #[arg(long, hide = true)]
    pub one_model: Option<String>,
}

#[derive(Debug, Serialize, serde::Deserialize)]
struct Report {
    tool: String,
    version: String,
    threads: usize,
    cpu: String,
    /// /proc/cpuinfo's "cpu family" and "model", which tell machines of one name apart.
    cpu_family_model: String,
    /// The x86-64 level the CPU reaches (v2, v3 = AVX2 + FMA, v4 = AVX-512).
    isa: String,
    /// The matrix-product kernels gemm dispatches to on this CPU.
    gemm_kernel: String,
    /// Which kernel takes products of at most 128 rows, as measured at start-up (`clip::skinny`).
    few_rows_kernel: String,
    results: Vec<Row>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    if let Some(name) = &args.one_model {
        let rows = bench_model(name, args)?;
        let out = serde_json::to_string(&rows)?;
        println!("{out}");
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the clipscope binary")?;
    let mut results = Vec::new();
    for name in args
        .models
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !MODELS.contains(&name) {
            bail!("unknown model {name:?}: use {}", MODELS.join(", "));
        }
        eprintln!("bench {name} ({threads} threads)…");
        let out = std::process::Command::new(&exe)
            .args(["bench", "--one-model", name, "--runs"])
            .arg(args.runs.to_string())
            .arg("--warmup")
            .arg(args.warmup.to_string())
            .arg("--cache")
            .arg(&args.cache)
            .env("RAYON_NUM_THREADS", threads.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        if !out.status.success() {
            bail!("benchmarking {name} failed ({})", out.status);
        }
        let rows: Vec<Row> = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("benchmark of {name} printed no results"))?;
        results.extend(rows);
    }
    print_table(&results);
    let report = Report {
        tool: "clipscope".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        threads,
        cpu: machine::cpu_name(),
        cpu_family_model: machine::cpu_family_model(),
        isa: machine::isa_level().into(),
        gemm_kernel: machine::gemm_kernel().into(),
        few_rows_kernel: few_rows_kernel(),
        results,
    };
    println!(
        "cpu: {} (family/model {}), {}, gemm kernels: {}; products of ≤ 128 rows: {}",
        report.cpu, report.cpu_family_model, report.isa, report.gemm_kernel, report.few_rows_kernel
    );
    if let Some(path) = &args.json {
        crate::atomic::write(path, serde_json::to_string_pretty(&report)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The start-up measurement that picked the kernel for products of few rows, as one phrase.
fn few_rows_kernel() -> String {
    let m = crate::clip::skinny::measured();
    let pick = match crate::clip::skinny::limit() {
        0 => "gemm".to_string(),
        rows => format!("streamed up to {rows} rows"),
    };
    let (ours, gemm) = m.few;
    let many = match m.many {
        Some((o, g)) => format!(
            "; {}×512×2048: {o:.2} and {g:.2} ms",
            crate::clip::skinny::MAX_ROWS
        ),
        None => String::new(),
    };
    format!("{pick} (32×512×2048: streamed {ours:.2} ms, gemm {gemm:.2} ms{many})")
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<9} {:<17} {:>10} {:>21}",
        "model", "measure", "median", "p10–p90"
    );
    for r in rows {
        match (r.median_ms, r.value_mb) {
            (Some(m), _) => println!(
                "{:<9} {:<17} {:>8.2}ms {:>9.2}–{:.2} ms",
                r.model,
                r.measure,
                m,
                r.p10_ms.unwrap_or(m),
                r.p90_ms.unwrap_or(m)
            ),
            (None, Some(v)) => println!("{:<9} {:<17} {:>8.0}MB", r.model, r.measure, v),
            _ => {}
        }
    }
}

/// The model folder: random weights at the real shape (written once), or the shipped default.
pub(super) fn model_dir(name: &str, cache: &Path) -> Result<PathBuf> {
    let config = match name {
        "vit-b32" => ClipConfig::vit_b32(),
        "vit-b16" => ClipConfig::vit_b16(),
        _ => return Ok(PathBuf::from("assets/default-model")),
    };
    let dir = cache.join(name);
    if !dir.join("model.safetensors").is_file() {
        eprintln!("writing random {name} weights to {}", dir.display());
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        Clip::new(&config, false, vb)?;
        crate::train::clip::save(&varmap, &config, &dir, DType::F32)?;
    }
    Ok(dir)
}

fn load(name: &str, dir: &Path) -> Result<LoadedModel> {
    if dir.join("model.safetensors").is_file() {
        Ok(LoadedModel::from_folder(dir, name)?)
    } else {
        // An installed binary without the source tree: the embedded default.
        Ok(LoadedModel::embedded()?)
    }
}

/// A random scorer for a backbone (the shipped one where the model has it).
fn scorer_for(model: &LoadedModel) -> Result<Scorer> {
    let options = ScorerOptions {
        architecture: crate::dcsm::scorer::Architecture::Paper,
        mode: crate::dcsm::scorer::ColumnMode::Aligned,
        steps: 0,
        scenes: 1,
        lr: 0.0,
        seed: 0,
        pairs: false,
        families: Vec::new(),
        init: None,
        resume: None,
        zscore_per_image: false,
    };
    let config = train_dcsm::config_for(model, &options);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let table = Tensor::rand(
        0f32,
        0.66,
        (config.functional_words.len(), config.rows),
        &Device::Cpu,
    )?;
    Ok(Scorer::with_table(config, vb, table)?)
}

/// A random mask network of SmartCLIP's shape for a backbone (width = text width).
fn random_mask_net(model: &LoadedModel) -> Result<crate::smartclip::MaskNet> {
    let w = model.config().text.hidden_size;
    let config = crate::smartclip::SmartConfig {
        mask_width: w,
        mask_heads: (w / 64).max(1),
        mask_layers: 1,
        text_pad_id: 0,
        score_scale: 100.0,
        mask_threshold: 0.5,
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    Ok(crate::smartclip::MaskNet::new(config, false, vb)?)
}

fn bench_model(name: &str, args: &BenchArgs) -> Result<Vec<Row>> {
    let (w, n) = (args.warmup, args.runs);
    if name == "siglip-b16" {
        let mut rows = super::bench_siglip::rows(&args.cache, w, n)?;
        rows.push(peak_rss(name));
        return Ok(rows);
    }
    let dir = model_dir(name, &args.cache)?;
    let mut rows = vec![time(name, "load", 1, (n / 4).max(3), || load(name, &dir))?];
    let mut model = load(name, &dir)?;
    let shipped_scorer = !model.scorers().is_empty();
    let side = model.config().vision.image_size;
    let pixels = Tensor::randn(0f32, 1.0, (1, 3, side, side), &Device::Cpu)?;
    rows.push(time(name, "image_encode", w, n, || {
        Ok(model.clip()?.image_tokens(&pixels)?)
    })?);
    let prompts: Vec<String> = PROMPTS.iter().map(|p| p.to_string()).collect();
    let pre = model.preprocess(&image::DynamicImage::new_rgb8(side as u32, side as u32));
    let image = model.encode_pixels(&pre)?;
    // Text and DCSM alone: without a scorer the text pass pads only to the longest prompt.
    let scorers = model.take_scorers();
    let shipped_net = model.take_smartclip();
    rows.push(time(name, "text_encode_8", w, n, || {
        Ok(model.encode_prompts(&prompts)?)
    })?);
    let encoded = model.encode_prompts(&prompts)?;
    rows.push(time(name, "dcsm_8", w, n, || {
        Ok(model.score(&image, &encoded)?)
    })?);
    let scorer = match scorers.into_iter().next() {
        Some(s) => s,
        None => scorer_for(&model)?,
    };
    let (r, c) = (scorer.config.rows, scorer.config.columns);
    let maps = Tensor::randn(0f32, 0.2, (8, r, c), &Device::Cpu)?;
    let reps: Vec<Vec<Replacement>> = vec![Vec::new(); 8];
    rows.push(time(name, "dcsm_scorer_8", w, n, || {
        Ok(scorer.score(&maps, &reps)?)
    })?);
    model.add_scorer(scorer)?;
    let shipped_mask = shipped_net.is_some();
    let net = match shipped_net {
        Some(n) => n,
        None => random_mask_net(&model)?,
    };
    let (t, width) = (
        model.config().text.max_position_embeddings,
        net.config.mask_width,
    );
    let hidden = Tensor::randn(0f32, 1.0, (8, t, width), &Device::Cpu)?;
    rows.push(time(name, "smartclip_mask_8", w, n, || {
        Ok(crate::smartclip::hard_mask(&net.forward(&hidden)?, 0.5)?.to_vec2::<f32>()?)
    })?);
    // Text, DCSM and scorer, every prompt encoded: the same work as the PyTorch script.
    rows.push(time(name, "prompt_edit_8", w, n, || {
        let p = model.encode_prompts(&prompts)?;
        Ok(model.score(&image, &p)?)
    })?);
    if shipped_mask {
        model.set_smartclip(net)?;
    }
    // What the app waits for on an edit before it draws the maps: one prompt of eight
    // changed, the other seven cached, the scorer's columns and SmartCLIP's pass left for the
    // follow-up as the worker does.
    let mut edit = prompts.clone();
    let mut serial = 0;
    let mut cache = crate::engine::TextCache::default();
    rows.push(time(name, "prompt_edit_1_of_8", w, n, || {
        serial += 1;
        edit[7] = format!("{} {serial}", PROMPTS[7]);
        let (p, _) = model.encode_prompts_cached_quick(&edit, &mut cache)?;
        Ok(model.score(&image, &p)?)
    })?);
    // Up to the worker's follow-up: the scorer's columns and SmartCLIP's full-context pass over
    // the edited prompt and every verdict, which the app shows a moment after the maps.
    rows.push(time(name, "prompt_edit_1_of_8_verdicts", w, n, || {
        serial += 1;
        edit[7] = format!("{} {serial}", PROMPTS[7]);
        let (p, _) = model.encode_prompts_cached_quick(&edit, &mut cache)?;
        let maps = model.score(&image, &p)?;
        let p = model.encode_prompts_cached(&edit, &mut cache)?;
        Ok((maps, model.score(&image, &p)?))
    })?);
    if !shipped_scorer {
        eprintln!("{name}: random DCSM scorer ({r}×{c})");
    }
    rows.extend(super::bench_views::rows(
        name, &model, &pixels, &encoded, w, n,
    )?);
    rows.push(peak_rss(name));
    Ok(rows)
}
