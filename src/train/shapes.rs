//! The training losses that ask for shapes by the shape words: on every patch of an object, on
//! colour fields, on recoloured scenes and on recoloured scenes against their twins.

use candle_core::{DType, Result, Tensor, D};

use super::clip::Weights;
use super::data;
use super::losses::{colour_field_loss, patch_shape_loss, shape_logits};
use crate::clip::{l2_normalize, Clip};

/// The shape losses of one batch (`shape_losses`).
pub(super) struct ShapeLosses {
    pub(super) patch_shape: Tensor,
    pub(super) colour_field: Tensor,
    pub(super) recoloured: Tensor,
    pub(super) paired: Tensor,
}

/// The losses that ask for shapes by the shape words' unit embeddings `shapes`: on every patch
/// of the batch's objects, on colour fields (all shapes alike), on recoloured scenes (pooled
/// and patch tokens, half each) and between each recoloured scene and its twin in the object's
/// own colour (`paired_loss`); each zero when its weight is.
pub(super) fn shape_losses(
    model: &Clip,
    batch: &data::Batch,
    options: &Weights,
    patches: &Tensor,
    shapes: &Tensor,
    scale: &Tensor,
) -> Result<ShapeLosses> {
    let zero = || Tensor::zeros((), DType::F32, patches.device());
    let split = |pixels: &Tensor, rows: Option<&Tensor>| -> Result<(Tensor, Tensor)> {
        let tokens = match rows {
            Some(rows) => model.image_tokens_kept(pixels, rows)?,
            None => model.image_tokens(pixels)?,
        };
        let on = l2_normalize(&tokens.narrow(1, 1, tokens.dim(1)? - 1)?.contiguous()?)?;
        Ok((l2_normalize(&tokens.narrow(1, 0, 1)?.contiguous()?)?, on))
    };
    let patch_shape = if options.patch_shape > 0.0 {
        patch_shape_loss(patches, shapes, &batch.shape_patches, scale)?
    } else {
        zero()?
    };
    let colour_field = match &batch.fields {
        Some(fields) if options.colour_field > 0.0 => {
            let (pooled, on) = split(fields, None)?;
            colour_field_loss(&pooled.squeeze(1)?, &on, shapes, scale)?
        }
        _ => zero()?,
    };
    let (mut recoloured, mut paired) = (zero()?, zero()?);
    if let Some(r) = batch.recoloured.as_ref() {
        if options.recoloured > 0.0 || options.paired > 0.0 {
            let (pooled, on) = split(&r.pixels, r.kept.as_ref())?;
            let whole = patch_shape_loss(&pooled, shapes, &r.shapes, scale)?;
            recoloured = ((whole + patch_shape_loss(&on, shapes, &r.patches, scale)?)? * 0.5)?;
            if let (Some(twins), true) = (&r.twins, options.paired > 0.0) {
                let (twin_pooled, twin_on) = split(twins, r.kept.as_ref())?;
                let whole = paired_loss(&twin_pooled, &pooled, shapes, &r.shapes, scale)?;
                let dense = paired_loss(&twin_on, &on, shapes, &r.patches, scale)?;
                paired = ((whole + dense)? * 0.5)?;
            }
        }
    }
    Ok(ShapeLosses {
        patch_shape,
        colour_field,
        recoloured,
        paired,
    })
}

/// Paired loss: the rows of unit tokens `own` and `off` (both (N, P, D): the same objects in
/// their own colours and in colours no object has) at the labelled positions (`labels`' first
/// members, as `patch_shape_loss`'s) scored against the shape words `shapes` at `scale`; the
/// KL divergence of the own-colour odds from the off-palette ones, summed over the shapes and
/// averaged over rows. The off-palette side is the target and gets no gradient: there only the
/// outline can answer, so an own colour that moves a shape word's odds away from it (purple
/// never a circle) costs, while a confident right answer on both sides costs nothing. 0 when no
/// position is labelled.
pub(super) fn paired_loss(
    own: &Tensor,
    off: &Tensor,
    shapes: &Tensor,
    labels: &[(u32, u32)],
    scale: &Tensor,
) -> Result<Tensor> {
    if labels.is_empty() {
        return Tensor::zeros((), DType::F32, own.device());
    }
    let log_odds = |x: &Tensor| -> Result<Tensor> {
        let logits = shape_logits(x, shapes, labels, scale)?;
        candle_nn::ops::log_softmax(&logits, D::Minus1)
    };
    let target = log_odds(&off.detach())?;
    let kl = (target.exp()? * (&target - log_odds(own)?)?)?;
    kl.sum(1)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn unit(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, (1, rows.len(), 2), &Device::Cpu).unwrap();
        l2_normalize(&t).unwrap()
    }

    #[test]
    fn the_paired_loss_is_zero_for_equal_odds_and_grows_with_the_difference() {
        let shapes = unit(&[[1.0, 0.0], [0.0, 1.0]]).squeeze(0).unwrap();
        let scale = Tensor::new(10f32, &Device::Cpu).unwrap();
        let a = unit(&[[1.0, 0.2], [0.3, 1.0]]);
        let labels = [(0, 0), (1, 1)];
        let near = unit(&[[1.0, 0.3], [0.3, 1.0]]);
        let far = unit(&[[0.2, 1.0], [0.3, 1.0]]);
        let loss = |b: &Tensor, labels: &[(u32, u32)]| {
            let l = paired_loss(b, &a, &shapes, labels, &scale).unwrap();
            l.to_scalar::<f32>().unwrap()
        };
        assert!(loss(&a, &labels).abs() < 1e-6);
        assert!(loss(&a, &[(1, 1)]).abs() < 1e-6);
        let (near_loss, far_loss) = (loss(&near, &labels), loss(&far, &labels));
        assert!(
            near_loss > 0.0 && far_loss > 10.0 * near_loss,
            "{near_loss} {far_loss}"
        );
        // Only labelled rows count: `far` differs from `a` in its first row alone.
        assert!(loss(&far, &[(1, 1)]).abs() < 1e-6);
        assert_eq!(loss(&far, &[]), 0.0);
    }

    #[test]
    fn the_paired_loss_moves_the_own_colour_side_alone() {
        let shapes = unit(&[[1.0, 0.0], [0.0, 1.0]]).squeeze(0).unwrap();
        let scale = Tensor::new(10f32, &Device::Cpu).unwrap();
        let own = candle_core::Var::from_tensor(&unit(&[[0.3, 1.0]])).unwrap();
        let off = candle_core::Var::from_tensor(&unit(&[[1.0, 0.2]])).unwrap();
        let loss = paired_loss(&own, &off, &shapes, &[(0, 0)], &scale).unwrap();
        assert!(loss.to_scalar::<f32>().unwrap() > 0.1);
        let grads = loss.backward().unwrap();
        assert!(grads.get(&off).is_none(), "the off-palette target moved");
        let g = grads
            .get(&own)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        // Towards the target's first shape: the first coordinate's gradient is negative.
        assert!(g[0] < 0.0 && g[1] > 0.0, "{g:?}");
    }
}
