//! `clipscope eval`: the probe table (family × split) and the localisation measure.

use anyhow::{Context, Result};
use std::path::PathBuf;

use crate::eval::{self, SplitReport};
use crate::world::Split;

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Model folder or hub id (default: the embedded shapes-world model).
    #[arg(long, value_name = "DIR|HUB_ID")]
    pub model: Option<String>,
    /// Scenes per synthetic split.
    #[arg(long, default_value_t = 300)]
    pub n: u64,
    /// Seed of the evaluation scenes.
    #[arg(long, default_value_t = 1000)]
    pub seed: u64,
    /// Independently rendered scenes (scenes.jsonl + PNGs).
    #[arg(long, value_name = "DIR", default_value = "tests/fixtures/independent")]
    pub independent: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let model = super::load_model(args.model.as_deref())?;
    let mut reports: Vec<(String, SplitReport)> = Vec::new();
    for (name, split) in [
        ("validation", Split::Validation),
        ("heldout", Split::HeldOut),
    ] {
        let items = eval::synthetic(args.seed, split, args.n);
        reports.push((name.into(), eval::evaluate(&model, &items)?));
    }
    if args.independent.join("scenes.jsonl").is_file() {
        let items = eval::from_folder(&args.independent)
            .with_context(|| format!("cannot read {}", args.independent.display()))?;
        reports.push(("independent".into(), eval::evaluate(&model, &items)?));
    }
    if args.json {
        let splits: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(n, r)| Ok((n.clone(), serde_json::to_value(r)?)))
            .collect::<Result<_>>()?;
        println!(
            "{}",
            serde_json::json!({ "model": model.name(), "splits": splits })
        );
        return Ok(());
    }
    print_table(model.name(), &reports);
    Ok(())
}

fn print_table(model: &str, reports: &[(String, SplitReport)]) {
    let scorers: Vec<String> = {
        let mut s: Vec<String> = reports
            .iter()
            .flat_map(|(_, r)| r.families.values().flat_map(|m| m.keys().cloned()))
            .collect();
        s.sort();
        s.dedup();
        s
    };
    println!("model: {model}");
    let mut header = format!("{:<13}", "family");
    for (name, r) in reports {
        for s in &scorers {
            header.push_str(&format!(" {:>22}", format!("{name}/{s} (n={})", r.scenes)));
        }
    }
    println!("{header}");
    for family in eval::family_names() {
        let mut line = format!("{family:<13}");
        for (_, r) in reports {
            for s in &scorers {
                let t = r
                    .families
                    .get(family)
                    .and_then(|m| m.get(s))
                    .copied()
                    .unwrap_or_default();
                let cell = match t.accuracy() {
                    Some(a) => format!("{:.3} ({}/{})", a, t.correct, t.total),
                    None => "-".into(),
                };
                line.push_str(&format!(" {cell:>22}"));
            }
        }
        println!("{line}");
    }
    let mut line = format!("{:<13}", "localisation");
    for (_, r) in reports {
        let t = r.localisation;
        let cell = t.accuracy().map_or("-".into(), |a| {
            format!("{:.3} ({}/{})", a, t.correct, t.total)
        });
        line.push_str(&format!(" {cell:>22}"));
        for _ in 1..scorers.len() {
            line.push_str(&format!(" {:>22}", ""));
        }
    }
    println!("{line}");
}
