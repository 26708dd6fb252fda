//! Grows a trained vision tower, deeper or wider, without changing what it computes, so training
//! continues from the same function with more capacity.
//!
//! Deeper: the trained layers are spread over the stack and each new layer starts as an identity
//! (its attention output and second MLP projection zero). Wider (net2net, Chen et al. 2016): every
//! unit is copied, the weights reading the copies share the old weight between them.

use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

const VISION_LAYERS: &str = "vision_model.encoder.layers.";

/// Number of vision encoder layers stored in `tensors`.
pub fn vision_layers(tensors: &HashMap<String, Tensor>) -> usize {
    tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix(VISION_LAYERS)?
                .split('.')
                .next()?
                .parse()
                .ok()
        })
        .map(|i: usize| i + 1)
        .max()
        .unwrap_or(0)
}

/// Where trained layer `i` of `old` goes in a stack of `new` layers: spread evenly, in order, so
/// the new (identity) layers sit between them; `old = 4, new = 6` gives 0, 1, 3, 4.
pub fn placement(i: usize, old: usize, new: usize) -> usize {
    i * new / old
}

/// Rewrites `tensors` (a model with fewer vision layers than `varmap`) into the deeper stack of
/// `varmap`: trained layers moved to their `placement`, new layers taken from `varmap`'s own
/// (random) initialisation with the attention output and `fc2` set to zero. Other tensors are
/// kept as they are.
pub fn deepen_vision(
    tensors: &mut HashMap<String, Tensor>,
    varmap: &VarMap,
    new: usize,
) -> anyhow::Result<()> {
    let old = vision_layers(tensors);
    if old > new {
        anyhow::bail!("the --init model has {old} vision layers, more than the {new} asked for");
    }
    if old == 0 || old == new {
        return Ok(());
    }
    let mut moved = HashMap::new();
    for (key, t) in tensors.iter() {
        if let Some(rest) = key.strip_prefix(VISION_LAYERS) {
            let (index, name) = rest.split_once('.').unwrap_or((rest, ""));
            let i: usize = index.parse()?;
            let to = placement(i, old, new);
            moved.insert(format!("{VISION_LAYERS}{to}.{name}"), t.clone());
        }
    }
    tensors.retain(|k, _| !k.starts_with(VISION_LAYERS));
    let data = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("variable map poisoned"))?;
    for (key, var) in data.iter() {
        if !key.starts_with(VISION_LAYERS) || moved.contains_key(key) {
            continue;
        }
        let zero = ["self_attn.out_proj.", "mlp.fc2."]
            .iter()
            .any(|part| key.contains(part));
        let t = var.as_tensor();
        let value = if zero { t.zeros_like()? } else { t.copy()? };
        moved.insert(key.clone(), value);
    }
    tracing::info!("vision tower deepened from {old} to {new} layers");
    tensors.extend(moved);
    Ok(())
}

const CLASS_EMBEDDING: &str = "vision_model.embeddings.class_embedding";

/// Width of the vision residual stream stored in `tensors` (the class embedding's length).
pub fn vision_width(tensors: &HashMap<String, Tensor>) -> Option<usize> {
    tensors.get(CLASS_EMBEDDING).map(|t| t.elem_count())
}

/// Widens the vision tower in `tensors` to `new` by a whole factor `k`: every residual and MLP
/// unit is copied `k` times and every attention head too (the head size is kept, so there are `k`
/// times the heads); a weight that reads the copies gets `1/k` of the old weight on each, plus
/// noise (`noise` × the old weight's spread) that sums to zero over a unit's copies. The copies
/// hold equal values, so the function is unchanged, yet their gradients differ and they learn
/// apart. The text side and the projections' outputs are untouched.
pub fn widen_vision(
    tensors: &mut HashMap<String, Tensor>,
    new: usize,
    noise: f32,
    seed: u64,
) -> anyhow::Result<()> {
    let Some(old) = vision_width(tensors) else {
        return Ok(());
    };
    if old == new {
        return Ok(());
    }
    if new < old || new % old != 0 {
        anyhow::bail!("the vision width {new} is not a multiple of the --init model's {old}");
    }
    let k = new / old;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut keys: Vec<String> = tensors
        .keys()
        .filter(|key| key.starts_with("vision_model.") || key.starts_with("visual_projection."))
        .cloned()
        .collect();
    keys.sort(); // the noise is drawn in a fixed order
    for key in keys {
        let mut t = tensors[&key].to_dtype(DType::F32)?;
        let (write, read) = roles(&key, t.rank());
        if let Some(dim) = write {
            t = Tensor::cat(&vec![t; k], dim)?;
        }
        if let Some(dim) = read {
            t = spread(&t, dim, k, noise, &mut rng)?;
        }
        tensors.insert(key, t);
    }
    tracing::info!("vision tower widened from {old} to {new}");
    Ok(())
}

/// Which dimension of a vision tensor holds units the tower writes (copied) and which holds units
/// it reads (shared out over the copies).
fn roles(key: &str, rank: usize) -> (Option<usize>, Option<usize>) {
    if key.starts_with("visual_projection.") {
        (None, Some(1))
    } else if key.ends_with("position_embedding.weight") {
        (Some(1), None)
    } else if rank == 2 {
        (Some(0), Some(1)) // q, k, v, out_proj, fc1, fc2: (out, in)
    } else {
        (Some(0), None) // biases, layer norms, the class and patch embeddings
    }
}

/// `t` repeated `k` times along `dim`, each copy `t / k` plus noise that cancels over the copies.
fn spread(
    t: &Tensor,
    dim: usize,
    k: usize,
    noise: f32,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Tensor> {
    let values = t.flatten_all()?.to_vec1::<f32>()?;
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    let scale = noise * std / k as f32;
    let part = (t / k as f64)?;
    let mut drawn = part.zeros_like()?;
    let mut copies = Vec::with_capacity(k);
    for _ in 1..k {
        let e: Vec<f32> = (0..values.len())
            .map(|_| rng.random_range(-1.0f32..1.0) * scale)
            .collect();
        let e = Tensor::from_vec(e, t.shape(), t.device())?;
        drawn = (drawn + &e)?;
        copies.push((&part + e)?);
    }
    copies.push((&part - drawn)?);
    Ok(Tensor::cat(&copies, dim)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trained_layers_are_spread_in_order() {
        let spots: Vec<usize> = (0..4).map(|i| placement(i, 4, 6)).collect();
        assert_eq!(spots, vec![0, 1, 3, 4]);
        let same: Vec<usize> = (0..4).map(|i| placement(i, 4, 4)).collect();
        assert_eq!(same, vec![0, 1, 2, 3]);
        let spots: Vec<usize> = (0..4).map(|i| placement(i, 4, 8)).collect();
        assert_eq!(spots, vec![0, 2, 4, 6]);
    }

    #[test]
    fn the_copies_of_a_spread_weight_sum_to_it_and_differ() {
        let device = candle_core::Device::Cpu;
        let t = Tensor::arange(0f32, 6.0, &device)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let s = spread(&t, 1, 3, 0.5, &mut rng).unwrap();
        assert_eq!(s.dims(), &[2, 9]);
        let copy = |i: usize| s.narrow(1, 3 * i, 3).unwrap();
        let sum = ((copy(0) + copy(1)).unwrap() + copy(2)).unwrap();
        let gap = (sum - &t).unwrap().abs().unwrap().max_all().unwrap();
        assert!(gap.to_scalar::<f32>().unwrap() < 1e-6);
        let apart = (copy(0) - copy(1))
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap();
        assert!(apart.to_scalar::<f32>().unwrap() > 0.0);
    }
}
