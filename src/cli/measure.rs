//! What a benchmark measures with: the timing of one measure, its result row, peak memory and
//! the prompts of the text measures (the PyTorch script uses the same list).

use anyhow::Result;
use serde::Serialize;
use std::time::Instant;

use super::machine;

/// The prompts of the text measures (the PyTorch script uses the same list).
pub const PROMPTS: [&str; 8] = [
    "a photo of a dog",
    "a dog without a collar",
    "a red circle above a blue square",
    "a small green triangle left of a big yellow circle",
    "no cat on the sofa",
    "two people walking on a beach at sunset",
    "a blue square",
    "a red circle below a green triangle and a small purple star",
];

/// One line of results: a timing or a memory reading.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Row {
    pub model: String,
    pub measure: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p10_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_mb: Option<f64>,
}

/// Times `f` after warm-up runs. Each result is dropped after its time is taken, so a load's time
/// does not include freeing the model it built (the PyTorch side frees the previous model untimed).
pub(super) fn time<T>(
    model: &str,
    measure: &str,
    warmup: usize,
    runs: usize,
    mut f: impl FnMut() -> Result<T>,
) -> Result<Row> {
    for _ in 0..warmup {
        f()?;
    }
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let out = std::hint::black_box(f()?);
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        drop(out);
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Ok(Row {
        model: model.into(),
        measure: measure.into(),
        median_ms: Some(q(0.5)),
        p10_ms: Some(q(0.1)),
        p90_ms: Some(q(0.9)),
        min_ms: ms.first().copied(),
        max_ms: ms.last().copied(),
        runs: Some(ms.len()),
        value_mb: None,
    })
}

/// The process's peak resident memory so far.
pub(super) fn peak_rss(name: &str) -> Row {
    Row {
        model: name.into(),
        measure: "peak_rss".into(),
        median_ms: None,
        p10_ms: None,
        p90_ms: None,
        min_ms: None,
        max_ms: None,
        runs: None,
        value_mb: machine::memory_mb("VmHWM"),
    }
}
