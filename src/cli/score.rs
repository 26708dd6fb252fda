//! `clipscope score`: plain CLIP cosines and softmax probabilities, as a table or JSON.

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

pub fn run(args: &ScoreArgs) -> Result<()> {
    let (model, image) = args.common.load()?;
    let encoded = model.encode_image(&image)?;
    let prompts = model.encode_prompts(&args.common.prompts)?;
    let scores = model.score(&encoded, &prompts)?;
    if args.json {
        let prompts: Vec<_> = scores
            .iter()
            .map(|s| {
                json!({
                    "text": s.tokenized.text,
                    "truncated": s.tokenized.truncated,
                    "clip_cosine": s.clip_cosine,
                    "clip_prob": s.clip_prob,
                })
            })
            .collect();
        let out = json!({
            "model": model.name(),
            "image": args.common.image.display().to_string(),
            "prompts": prompts,
        });
        println!("{out}");
    } else {
        println!("{:>8}  {:>7}  prompt", "cosine", "prob");
        for s in &scores {
            let note = if s.tokenized.truncated {
                "  (truncated)"
            } else {
                ""
            };
            println!(
                "{:>8.4}  {:>7.4}  {}{note}",
                s.clip_cosine, s.clip_prob, s.tokenized.text
            );
        }
    }
    Ok(())
}
