//! `clipscope score`: pooled cosines and probabilities (CLIP's softmax over the prompts, SigLIP's
//! sigmoid per prompt), as a table or JSON.

use anyhow::Result;
use serde_json::json;

use super::Common;

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How to read DCSM scores (they are relative to the prompts scored together).
pub const ZSCORE_NOTE: &str = "DCSM scores are z-scored over all prompts given together: \
compare prompts within one call, not across calls";

pub fn run(args: &ScoreArgs) -> Result<()> {
    let (model, image) = args.common.load()?;
    let encoded = model.encode_decoded(&image)?;
    let prompts = model.encode_prompts(&args.common.prompts)?;
    let scores = model.score(&encoded, &prompts)?;
    if args.json {
        let prompts: Vec<_> = scores
            .iter()
            .map(|s| {
                let mut p = json!({
                    "text": s.tokenized.text,
                    "truncated": s.tokenized.truncated,
                    "clip_cosine": s.clip_cosine,
                    "clip_prob": s.clip_prob,
                    "pooled_at": s.tokenized.eos_index(),
                });
                if let Some(c) = &s.tokenized.cleaned {
                    p["cleaned_text"] = json!(c);
                }
                if let Some(m) = &s.smartclip {
                    p["smartclip_score"] = json!(m.score);
                    p["mask_kept"] = json!(m.mask_kept);
                    p["mask"] = json!(m.mask);
                }
                if let Some(d) = s.dcsm_score() {
                    p["dcsm_score"] = json!(d);
                    if let Some(t) = &s.dcsm_text {
                        p["dcsm_text"] = json!(t);
                    }
                    p["dcsm_functional_words"] = json!(s
                        .functional
                        .iter()
                        .map(|r| json!({"word": r.word, "column": r.column}))
                        .collect::<Vec<_>>());
                }
                p
            })
            .collect();
        let mut out = json!({
            "model": model.name(),
            "family": model.family(),
            "score_kind": model.family().score_kind(),
            "pipeline": model.pipeline(),
            "image": args.common.image.display().to_string(),
            "prompts": prompts,
        });
        if let Some(s) = model.scorers().first() {
            out["dcsm"] = json!({
                "scorer": s.label(),
                "mode": s.config.mode,
                "note": ZSCORE_NOTE,
            });
        }
        println!("{out}");
    } else {
        let dcsm = !model.scorers().is_empty();
        let smart = model.smartclip().is_some();
        let mut head = String::new();
        if dcsm {
            head.push_str("      dcsm");
        }
        if smart {
            head.push_str("  smartclip   kept");
        }
        let prob = match model.family().score_kind() {
            crate::engine::ScoreKind::Softmax => "prob",
            crate::engine::ScoreKind::Sigmoid => "sigmoid",
        };
        println!("{:>8}  {:>7}{head}  prompt", "cosine", prob);
        for s in &scores {
            let note = if s.tokenized.truncated {
                "  (truncated)"
            } else {
                ""
            };
            let mut d = s
                .dcsm_score()
                .map_or(String::new(), |d| format!("  {d:>8.3}"));
            if let Some(m) = &s.smartclip {
                d.push_str(&format!(
                    "  {:>9.4}  {:>4.0}%",
                    m.score,
                    m.mask_kept * 100.0
                ));
            }
            println!(
                "{:>8.4}  {:>7.4}{d}  {}{note}",
                s.clip_cosine, s.clip_prob, s.tokenized.text
            );
        }
        if dcsm {
            println!("dcsm: {ZSCORE_NOTE}");
        }
    }
    Ok(())
}
