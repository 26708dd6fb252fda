//! Deepens a trained vision tower without changing what it computes: the trained layers are spread
//! over the deeper stack and each new layer starts as an identity (its attention output and second
//! MLP projection zero), so training continues from the same function with more capacity.

use candle_core::Tensor;
use candle_nn::VarMap;
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
}
