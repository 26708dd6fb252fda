//! `clipscope synth`: writes shapes-world scenes as PNGs with their exact descriptions.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::PathBuf;

use crate::world::{self, Split};

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Folder to write scene PNGs and scenes.jsonl into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// How many scenes.
    #[arg(long, default_value_t = 16)]
    pub n: u64,
    /// Seed; the same seed gives the same scenes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// train, validation or heldout.
    #[arg(long, default_value = "validation", value_parser = parse_split)]
    pub split: Split,
    /// Write the app's hand-placed demo scenes instead (assets/demo).
    #[arg(long)]
    pub demo: bool,
}

pub fn parse_split(s: &str) -> Result<Split, String> {
    Split::parse(s).ok_or_else(|| format!("unknown split {s:?} (train, validation, heldout)"))
}

pub fn run(args: &SynthArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    if args.demo {
        for d in world::demo::scenes() {
            world::render(&d.scene).save(args.out.join(d.name))?;
        }
        eprintln!("wrote the demo scenes to {}", args.out.display());
        return Ok(());
    }
    let index_path = args.out.join("scenes.jsonl");
    let mut index = std::io::BufWriter::new(
        std::fs::File::create(&index_path)
            .with_context(|| format!("cannot write {}", index_path.display()))?,
    );
    for i in 0..args.n {
        let scene = world::scene(args.seed, args.split, i);
        let file = format!("scene{i:05}.png");
        world::render(&scene).save(args.out.join(&file))?;
        let line = serde_json::json!({
            "file": file,
            "split": args.split,
            "description": scene.description(),
            "scene": scene,
            "probes": scene.probes(i),
        });
        writeln!(index, "{line}")?;
    }
    index.flush()?;
    eprintln!(
        "wrote {} scenes and {} to {}",
        args.n,
        index_path.display(),
        args.out.display()
    );
    Ok(())
}
