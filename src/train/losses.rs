//! The loss terms of CLIP training beside the CLIP loss itself: hard negatives, the vocabulary,
//! FILIP-style token level, grounding on the objects the shapes world drew, and dense shapes.

use candle_core::{DType, Result, Tensor};
use candle_nn::loss::cross_entropy;

use super::data;

/// The vocabulary loss: each image classified among the colour-shape phrases (the first
/// `pairs` columns of its (B, V) logits) and, separately, among the shape words; minus the log
/// of the softmax mass on the ones true of it (`mask`: 0 true, −10⁴ false), averaged.
pub(super) fn vocabulary_loss(logits: &Tensor, mask: &Tensor, pairs: usize) -> Result<Tensor> {
    let v = logits.dim(1)?;
    let part = |start: usize, len: usize| -> Result<Tensor> {
        let log_p = candle_nn::ops::log_softmax(&logits.narrow(1, start, len)?, 1)?;
        let on_true = log_sum_exp(&(log_p + mask.narrow(1, start, len)?)?)?;
        on_true.neg()?.mean_all()
    };
    (part(0, pairs)? + part(pairs, v - pairs)?)? * 0.5
}

/// The per-object loss: every object of every scene (`data::object_ranks`) asks its image's
/// pooled embedding to rank its own phrase ("a purple cross") above its colour with each other
/// shape ("a purple circle", …): a cross-entropy over those phrases' columns of the (B, V)
/// vocabulary logits, averaged over the objects. The vocabulary loss is satisfied once the mass
/// sits on any one true phrase, so a second or third object could go unread; here each counts.
pub(super) fn object_loss(logits: &Tensor, ranks: &[(u32, u32, Vec<u32>)]) -> Result<Tensor> {
    let device = logits.device();
    if ranks.is_empty() {
        return Tensor::zeros((), DType::F32, device);
    }
    let v = logits.dim(1)?;
    let rows: Vec<u32> = ranks.iter().map(|r| r.0).collect();
    let mut outside = vec![-1e4f32; ranks.len() * v];
    let mut targets = Vec::with_capacity(ranks.len());
    for (i, (_, own, rivals)) in ranks.iter().enumerate() {
        for &c in rivals.iter().chain(std::iter::once(own)) {
            outside[i * v + c as usize] = 0.0;
        }
        targets.push(*own);
    }
    let n = ranks.len();
    let picked = logits
        .contiguous()?
        .index_select(&Tensor::from_vec(rows, n, device)?, 0)?;
    let masked = (picked + Tensor::from_vec(outside, (n, v), device)?)?;
    cross_entropy(&masked, &Tensor::from_vec(targets, n, device)?)
}

/// The composition loss: the pooled text embeddings (unit length) of the training colour-shape
/// phrases, `phrases` (P, D) in `data::vocabulary()`'s order, asked to be additive in colour and
/// shape: for every parallelogram of `quads`, `|e(c,s) − e(c,s') − e(c',s) + e(c',s')|²`,
/// averaged. A text side whose phrases are colour + shape composes the held-out pairs it never
/// saw the way it composes the others.
pub(super) fn composition_loss(phrases: &Tensor, quads: &[[u32; 4]]) -> Result<Tensor> {
    if quads.is_empty() {
        return Tensor::zeros((), DType::F32, phrases.device());
    }
    let corner = |k: usize| -> Result<Tensor> {
        let index: Vec<u32> = quads.iter().map(|q| q[k]).collect();
        phrases.index_select(&Tensor::new(index, phrases.device())?, 0)
    };
    let residual = (((corner(0)? - corner(1)?)? - corner(2)?)? + corner(3)?)?;
    residual.sqr()?.sum(1)?.mean_all()
}

/// Dense shape loss: every labelled patch (unit (B, P, D) `patches`, `labels` as
/// `data::Batch::shape_patches`) classified among the shape words' unit text embeddings
/// (`shapes`, (S, D)) at the model's logit `scale`. Colour cannot answer it, so it asks every
/// patch on an object to carry that object's shape; 0 when no patch is labelled.
pub(super) fn patch_shape_loss(
    patches: &Tensor,
    shapes: &Tensor,
    labels: &[(u32, u32)],
    scale: &Tensor,
) -> Result<Tensor> {
    if labels.is_empty() {
        return Tensor::zeros((), DType::F32, patches.device());
    }
    let targets = labels.iter().map(|l| l.1).collect::<Vec<_>>();
    let targets = Tensor::new(targets, patches.device())?;
    cross_entropy(&shape_logits(patches, shapes, labels, scale)?, &targets)
}

/// The labelled rows of unit tokens `tokens` (B, P, D; `labels`' first members number them
/// across the batch, as `data::Batch::shape_patches`) scored against the shape words' unit
/// embeddings `shapes` (S, D) at `scale`: (labels, S) logits.
pub(super) fn shape_logits(
    tokens: &Tensor,
    shapes: &Tensor,
    labels: &[(u32, u32)],
    scale: &Tensor,
) -> Result<Tensor> {
    let (b, p, d) = tokens.dims3()?;
    let at = Tensor::new(
        labels.iter().map(|l| l.0).collect::<Vec<_>>(),
        tokens.device(),
    )?;
    let chosen = tokens.reshape((b * p, d))?.index_select(&at, 0)?;
    chosen.matmul(&shapes.t()?)?.broadcast_mul(scale)
}

/// Colour-field loss: the pooled embedding and every patch of each colour field (unit
/// `pooled` (F, D) and `patches` (F, P, D)) scored against the shape words' unit embeddings,
/// minus the mean log-softmax over the shapes, so the least it can be is ln(shapes), where every
/// shape word scores alike; the pooled and patch halves are averaged.
pub(super) fn colour_field_loss(
    pooled: &Tensor,
    patches: &Tensor,
    shapes: &Tensor,
    scale: &Tensor,
) -> Result<Tensor> {
    let (f, p, d) = patches.dims3()?;
    let tie = |x: &Tensor| -> Result<Tensor> {
        let logits = x.matmul(&shapes.t()?)?.broadcast_mul(scale)?;
        candle_nn::ops::log_softmax(&logits, 1)?.mean_all()?.neg()
    };
    (tie(pooled)? + tie(&patches.reshape((f * p, d))?)?)? * 0.5
}

/// Two-way cross-entropy of each image between its true caption (column `image`) and its hard
/// negative, from the (B, B + M) image-to-caption logits. Zero without negatives.
pub(super) fn negative_loss(logits: &Tensor, negatives: &[(usize, usize)]) -> Result<Tensor> {
    if negatives.is_empty() {
        return Tensor::zeros((), DType::F32, logits.device());
    }
    let (_, n) = logits.dims2()?;
    let flat = logits.flatten_all()?;
    let device = logits.device();
    let index: Vec<u32> = negatives
        .iter()
        .flat_map(|&(i, j)| [(i * n + i) as u32, (i * n + j) as u32])
        .collect();
    let pairs = flat
        .index_select(&Tensor::from_vec(index, 2 * negatives.len(), device)?, 0)?
        .reshape((negatives.len(), 2))?;
    cross_entropy(&pairs, &Tensor::zeros(negatives.len(), DType::U32, device)?)
}

/// FILIP-style token-level loss: every patch against every word token of every true caption of
/// the batch, (B, P, D) normalised patches, (B, T, D) normalised tokens, (B, T) word mask.
pub(super) fn token_level_loss(
    patches: &Tensor,
    words: &Tensor,
    word_mask: &Tensor,
    scale: &Tensor,
) -> Result<Tensor> {
    let (b, p, d) = patches.dims3()?;
    let t = words.dim(1)?;
    let targets = Tensor::arange(0u32, b as u32, patches.device())?;
    let sims = patches
        .reshape((b * p, d))?
        .matmul(&words.reshape((b * t, d))?.t()?)?
        .reshape((b, p, b, t))?; // [image i, patch, caption j, token]
    let mask = word_mask.reshape((1, 1, b, t))?;
    let counts = word_mask.sum(1)?.clamp(1.0, f64::MAX)?.reshape((1, b))?;
    // Caption → image: mean over the caption's words of their best patch.
    let best_patch = sims.max(1)?; // (B_i, B_j, T)
    let t2i = (best_patch
        .broadcast_mul(&mask.reshape((1, b, t))?)?
        .sum(2)?)
    .broadcast_div(&counts)?; // (B_i, B_j)
                              // Image → caption: mean over patches of their best word.
    let masked = sims.broadcast_add(&((mask - 1.0)? * 1e4)?)?;
    let i2t = masked.max(3)?.mean(1)?; // (B_i, B_j)
    let t2i = t2i.broadcast_mul(scale)?;
    let i2t = i2t.broadcast_mul(scale)?;
    (cross_entropy(&i2t, &targets)? + cross_entropy(&t2i.t()?, &targets)?)? * 0.5
}

/// For each grounded token, minus the log of the softmax mass (over its own image's patches)
/// that falls on the patches of its object: (B, P, D) normalised patches, (B, T, D) normalised
/// tokens. Zero without targets.
pub(super) fn ground_loss(
    patches: &Tensor,
    words: &Tensor,
    batch: &data::Batch,
    scale: &Tensor,
) -> Result<Tensor> {
    if batch.ground.is_empty() {
        return Tensor::zeros((), DType::F32, patches.device());
    }
    let (b, p, _) = patches.dims3()?;
    let t = words.dim(1)?;
    let own = words
        .matmul(&patches.transpose(1, 2)?)?
        .reshape((b * t, p))?; // [caption·token, patch]
    let rows: Vec<u32> = batch
        .ground
        .iter()
        .map(|(i, g)| (i * t + g.token) as u32)
        .collect();
    let n = rows.len();
    let mut outside = vec![-1e4f32; n * p];
    for (k, (_, g)) in batch.ground.iter().enumerate() {
        for &q in &g.patches {
            outside[k * p + q] = 0.0;
        }
    }
    let device = patches.device();
    let logits = own
        .index_select(&Tensor::from_vec(rows, n, device)?, 0)?
        .broadcast_mul(scale)?;
    let log_p = candle_nn::ops::log_softmax(&logits, 1)?;
    let on_object = log_sum_exp(&(log_p + Tensor::from_vec(outside, (n, p), device)?)?)?;
    on_object.neg()?.mean_all()
}

/// log Σ exp over the last dimension of a 2-D tensor, stably.
pub(super) fn log_sum_exp(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(1)?.detach();
    (x.broadcast_sub(&max)?.exp()?.sum_keepdim(1)?.log()? + max)?.squeeze(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn each_object_is_ranked_against_its_colour_with_other_shapes_only() {
        let dev = Device::Cpu;
        // Image 0: its own phrase (column 1) against columns 0 and 2; column 3 belongs to no
        // ranking and is ignored however high it scores.
        let ranks = vec![(0u32, 1u32, vec![0u32, 2])];
        let good = Tensor::new(&[[0f32, 9.0, 0.0, 50.0]], &dev).unwrap();
        let bad = Tensor::new(&[[9f32, 0.0, 0.0, -50.0]], &dev).unwrap();
        let low = object_loss(&good, &ranks)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let high = object_loss(&bad, &ranks)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(low < 1e-3, "{low}");
        assert!(high > 8.0, "{high}");
        let none = object_loss(&good, &[]).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(none, 0.0);
    }

    #[test]
    fn composition_is_free_for_additive_phrases_and_costs_otherwise() {
        let device = Device::Cpu;
        // Four phrases (c, s), (c, s'), (c', s), (c', s') as colour + shape vectors.
        let colour = [[1f32, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let shape = [[0f32, 0.0, 1.0], [0.5, 0.5, 0.0]];
        let mut rows = Vec::new();
        for c in colour {
            for s in shape {
                rows.extend((0..3).map(|k| c[k] + s[k]));
            }
        }
        let additive = Tensor::from_vec(rows.clone(), (4, 3), &device).unwrap();
        let quads = [[0u32, 1, 2, 3]];
        let free = composition_loss(&additive, &quads).unwrap();
        assert!(free.to_scalar::<f32>().unwrap().abs() < 1e-6);
        rows[0] += 1.0;
        let bent = Tensor::from_vec(rows, (4, 3), &device).unwrap();
        let cost = composition_loss(&bent, &quads).unwrap();
        assert!((cost.to_scalar::<f32>().unwrap() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn patch_shapes_are_cheap_when_each_patch_matches_its_shape_word() {
        let device = Device::Cpu;
        let shapes = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &device).unwrap();
        // One image of three patches: like shape 0, like shape 1, and unlabelled.
        let patches = Tensor::new(&[[[1f32, 0.0], [0.0, 1.0], [0.7, 0.7]]], &device).unwrap();
        let scale = Tensor::new(10f32, &device).unwrap();
        let loss = |labels: &[(u32, u32)]| {
            patch_shape_loss(&patches, &shapes, labels, &scale)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let right = loss(&[(0, 0), (1, 1)]);
        let wrong = loss(&[(0, 1), (1, 0)]);
        assert!(
            (right - (1.0 + (-10f32).exp()).ln()).abs() < 1e-6,
            "{right}"
        );
        assert!((wrong - (1.0 + 10f32.exp()).ln()).abs() < 1e-4, "{wrong}");
        assert_eq!(loss(&[]), 0.0);
    }

    #[test]
    fn a_colour_field_costs_least_when_the_shape_words_tie() {
        let device = Device::Cpu;
        let shapes = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &device).unwrap();
        let scale = Tensor::new(10f32, &device).unwrap();
        let cost = |v: [f32; 2]| {
            let pooled = Tensor::new(&[v], &device).unwrap();
            let patches = Tensor::new(&[[v, v]], &device).unwrap();
            colour_field_loss(&pooled, &patches, &shapes, &scale)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let tied = cost([0.7, 0.7]);
        assert!((tied - 2f32.ln()).abs() < 1e-6, "{tied}");
        assert!(cost([1.0, 0.0]) > tied + 4.0);
    }
}
