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
    println!("model: {model}");
    for (name, r) in reports {
        let mut scorers: Vec<&String> = r.families.values().flat_map(|m| m.keys()).collect();
        scorers.sort();
        scorers.dedup();
        println!("\n{name} ({} scenes)", r.scenes);
        let mut header = format!("{:<13}", "family");
        for s in &scorers {
            header.push_str(&format!(" {s:>18}"));
        }
        println!("{header}");
        for family in eval::family_names() {
            let mut line = format!("{family:<13}");
            for s in &scorers {
                let t = r
                    .families
                    .get(family)
                    .and_then(|m| m.get(*s))
                    .copied()
                    .unwrap_or_default();
                line.push_str(&format!(" {:>18}", cell(t)));
            }
            println!("{line}");
        }
        println!("{:<13} {:>18}", "localisation", cell(r.localisation));
        for (source, t) in &r.localisation_by_source {
            println!("{:<13} {:>18}", format!("  {source}"), cell(*t));
        }
    }
}

fn cell(t: eval::Tally) -> String {
    t.accuracy().map_or("-".into(), |a| {
        format!("{:.3} ({}/{})", a, t.correct, t.total)
    })
}
