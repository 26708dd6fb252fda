//! The training losses that ask for shapes by the shape words: on every patch of an object, on
//! colour fields and on recoloured scenes.

use candle_core::{DType, Result, Tensor};

use super::clip::Weights;
use super::data;
use super::losses::{colour_field_loss, patch_shape_loss};
use crate::clip::{l2_normalize, Clip};

/// The losses that ask for shapes by the shape words' unit embeddings `shapes`: on every patch
/// of the batch's objects, on colour fields (all shapes alike) and on recoloured scenes (pooled
/// and patch tokens, half each); each zero when its weight is.
pub(super) fn shape_losses(
    model: &Clip,
    batch: &data::Batch,
    options: &Weights,
    patches: &Tensor,
    shapes: &Tensor,
    scale: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
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
    let recoloured = match &batch.recoloured {
        Some(r) if options.recoloured > 0.0 => {
            let (pooled, on) = split(&r.pixels, r.kept.as_ref())?;
            let whole = patch_shape_loss(&pooled, shapes, &r.shapes, scale)?;
            ((whole + patch_shape_loss(&on, shapes, &r.patches, scale)?)? * 0.5)?
        }
        _ => zero()?,
    };
    Ok((patch_shape, colour_field, recoloured))
}
