//! `clipscope soak`: drives the app's worker with random prompt edits, image switches, new and
//! forgotten images on a random-weight model for a while, and prints resident memory over time.

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::ModelSource;
use crate::worker::{Event, ImageId, ImageInput, ImageRef, Job, Worker};

/// Words the random prompts are made of (objects, colours, relations, negations).
const WORDS: [&str; 24] = [
    "a", "dog", "cat", "red", "blue", "circle", "square", "above", "below", "left", "of", "no",
    "without", "collar", "photo", "small", "big", "green", "star", "on", "the", "sofa", "beach",
    "and",
];

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Seconds between memory readings.
    #[arg(long, default_value_t = 60.0)]
    pub every: f64,
    /// vit-b16 or vit-b32 (random weights at the real shape, written once to --cache), or
    /// default (the embedded shapes-world model), or a model folder.
    #[arg(long, default_value = "vit-b16")]
    pub model: String,
    /// Where random-weight models are written once and reused.
    #[arg(long, value_name = "DIR", default_value = "target/bench-models")]
    pub cache: PathBuf,
    /// Prompts in the list that is edited (the app scores all of them on every edit).
    #[arg(long, default_value_t = 8)]
    pub prompts: usize,
    /// Images in the gallery at most; past that, each new image replaces a random one. More
    /// than the worker's image cache holds (256 MiB: about 250 B/16 encodings), so it evicts.
    #[arg(long, default_value_t = 400)]
    pub gallery: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the readings as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// One memory reading.
#[derive(Debug, Clone, Serialize)]
struct Reading {
    seconds: f64,
    jobs: usize,
    images_added: usize,
    rss_mb: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    model: String,
    minutes: f64,
    readings: Vec<Reading>,
    /// Largest reading minus the first one taken after the warm-up (the first minute, or the
    /// first half of a shorter run), when the caches have filled.
    growth_after_warmup_mb: f64,
}

pub fn run(args: &SoakArgs) -> Result<()> {
    if !(args.minutes > 0.0 && args.every > 0.0) {
        bail!("--minutes and --every must be positive");
    }
    if args.prompts == 0 || args.gallery == 0 {
        bail!("--prompts and --gallery must be at least 1");
    }
    let source = match args.model.as_str() {
        "default" => ModelSource::Embedded,
        name @ ("vit-b16" | "vit-b32") => {
            ModelSource::Folder(super::bench::model_dir(name, &args.cache)?)
        }
        dir if std::path::Path::new(dir).is_dir() => ModelSource::Folder(dir.into()),
        other => bail!("unknown model {other:?}: use vit-b16, vit-b32, default or a model folder"),
    };
    let worker = Worker::spawn(|| {});
    let mut soak = Soak {
        worker,
        rng: ChaCha8Rng::seed_from_u64(args.seed),
        generation: 0,
        jobs: 0,
    };
    soak.send(Job::LoadModel { source });
    soak.wait(|e| matches!(e, Event::ModelReady(_)))
        .context("the model did not load")?;

    let mut prompts: Vec<String> = (0..args.prompts).map(|_| soak.prompt()).collect();
    let mut images: Vec<ImageRef> = Vec::new();
    let mut next_id: ImageId = 0;
    let mut current = 0;
    let start = Instant::now();
    let end = Duration::from_secs_f64(args.minutes * 60.0);
    let mut readings = vec![reading(&start, 0, 0)?];
    println!(
        "{:>8} {:>8} {:>8} {:>9}",
        "seconds", "jobs", "images", "RSS MB"
    );
    print_reading(&readings[0]);
    while start.elapsed() < end {
        let roll: f64 = soak.rng.random();
        if images.is_empty() || roll < 0.10 {
            // A new image (every one distinct, so the image cache has to evict), replacing a
            // random one once the gallery is full.
            let image = ImageRef {
                id: next_id,
                input: soak.image()?,
            };
            next_id += 1;
            if images.len() >= args.gallery {
                let gone = images.swap_remove(soak.rng.random_range(0..images.len()));
                soak.send(Job::Forget { image_id: gone.id });
            }
            images.push(image);
            current = images.len() - 1;
        } else if roll < 0.15 && images.len() > 1 {
            // The gallery removes an image.
            let gone = images.swap_remove(soak.rng.random_range(0..images.len()));
            soak.send(Job::Forget { image_id: gone.id });
            current = soak.rng.random_range(0..images.len());
        } else if roll < 0.40 {
            current = soak.rng.random_range(0..images.len());
        } else {
            // A prompt edit: one prompt of the list changes.
            let i = soak.rng.random_range(0..prompts.len());
            prompts[i] = soak.prompt();
        }
        soak.score(&images[current], &prompts)?;
        if readings
            .last()
            .is_some_and(|r| r.seconds + args.every <= secs(&start))
        {
            let r = reading(&start, soak.jobs, next_id as usize)?;
            print_reading(&r);
            readings.push(r);
        }
    }
    readings.push(reading(&start, soak.jobs, next_id as usize)?);
    print_reading(readings.last().context("no reading")?);
    soak.worker.shutdown();

    // Caches fill during the first minute (or the first half of a shorter run).
    let warmup = (args.minutes * 30.0).min(60.0);
    let warm = readings
        .iter()
        .find(|r| r.seconds >= warmup)
        .unwrap_or(&readings[0])
        .rss_mb;
    let max = readings.iter().map(|r| r.rss_mb).fold(0.0, f64::max);
    println!(
        "resident memory: {warm:.0} MB after {warmup:.0} s, {max:.0} MB at most, {:.0} MB at the end",
        readings.last().map_or(0.0, |r| r.rss_mb)
    );
    if let Some(path) = &args.json {
        let report = Report {
            model: args.model.clone(),
            minutes: args.minutes,
            readings,
            growth_after_warmup_mb: max - warm,
        };
        crate::atomic::write(path, serde_json::to_string_pretty(&report)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The worker and what drives it.
struct Soak {
    worker: Worker,
    rng: ChaCha8Rng,
    generation: u64,
    jobs: usize,
}

impl Soak {
    fn send(&mut self, job: Job) {
        self.jobs += 1;
        // A worker that is gone shows as the timeout in `wait`.
        self.worker.send(job);
    }

    /// Waits for an event that `want` accepts; a worker error is returned as one.
    fn wait(&self, want: impl Fn(&Event) -> bool) -> Result<Event> {
        loop {
            let event = self
                .worker
                .events()
                .recv_timeout(Duration::from_secs(600))
                .context("the worker did not answer within 10 minutes")?;
            if let Event::Error { message, .. } | Event::ModelFailed { message, .. } = &event {
                bail!("the worker failed: {message}");
            }
            if want(&event) {
                return Ok(event);
            }
        }
    }

    /// Scores the prompts against an image, as the app does after an edit, and waits for it.
    fn score(&mut self, image: &ImageRef, prompts: &[String]) -> Result<()> {
        self.generation += 1;
        let generation = self.generation;
        self.send(Job::Score {
            image: image.clone(),
            prompts: prompts.to_vec(),
            generation,
            view: Default::default(),
        });
        self.wait(|e| matches!(e, Event::Results(r) if r.generation == generation))?;
        Ok(())
    }

    /// A random prompt of 2 to 9 words.
    fn prompt(&mut self) -> String {
        let n = self.rng.random_range(2..10);
        let words: Vec<&str> = (0..n)
            .map(|_| WORDS[self.rng.random_range(0..WORDS.len())])
            .collect();
        words.join(" ")
    }

    /// A random image of random size as PNG bytes, as a dropped file would arrive: a two-colour
    /// gradient with a few rectangles, so it compresses and the gallery itself stays small.
    fn image(&mut self) -> Result<ImageInput> {
        let (w, h) = (
            self.rng.random_range(64..1600u32),
            self.rng.random_range(64..1600u32),
        );
        let (a, b): ([u8; 3], [u8; 3]) = (self.rng.random(), self.rng.random());
        let mut img = image::RgbImage::from_fn(w, h, |_, y| {
            let t = y as f32 / h as f32;
            image::Rgb(std::array::from_fn(|c| {
                (f32::from(a[c]) * (1.0 - t) + f32::from(b[c]) * t) as u8
            }))
        });
        for _ in 0..self.rng.random_range(1..5) {
            let colour = image::Rgb(self.rng.random());
            let (x0, y0) = (self.rng.random_range(0..w), self.rng.random_range(0..h));
            let (x1, y1) = (
                (x0 + self.rng.random_range(1..w)).min(w),
                (y0 + self.rng.random_range(1..h)).min(h),
            );
            for y in y0..y1 {
                for x in x0..x1 {
                    img.put_pixel(x, y, colour);
                }
            }
        }
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .context("cannot encode a soak image")?;
        Ok(ImageInput::Bytes(Arc::new(png)))
    }
}

fn secs(start: &Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn reading(start: &Instant, jobs: usize, images_added: usize) -> Result<Reading> {
    Ok(Reading {
        seconds: secs(start),
        jobs,
        images_added,
        rss_mb: super::machine::memory_mb("VmRSS")
            .context("cannot read the resident memory (/proc/self/status)")?,
    })
}

fn print_reading(r: &Reading) {
    println!(
        "{:>8.0} {:>8} {:>8} {:>9.1}",
        r.seconds, r.jobs, r.images_added, r.rss_mb
    );
}
