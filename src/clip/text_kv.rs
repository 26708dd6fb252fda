//! The text tower in two parts of one padded pass: a prompt's own tokens first (all its maps
//! need), its padding positions later (a DCSM scorer's columns), attending to the keys and
//! values the first part kept, as llama.rs's callers keep a `Cache` between steps.
//!
//! With the padding keys masked (`padded_causal_mask`), a padding position attends to the
//! prompt's own tokens only, never to another padding position, so the two parts compute
//! exactly the rows one padded pass does.

use candle_core::{Module, Result, Tensor};

use super::{padded_causal_mask, Clip};
use crate::clip::train_ops;

/// A prompt's keys and values at every text layer, its own tokens only: each (heads, length,
/// head_dim), as the layer's attention sees them.
#[derive(Debug, Clone)]
pub struct TextKv {
    layers: Vec<(Tensor, Tensor)>,
}

impl TextKv {
    /// The prompt's own tokens (SOS to EOS).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |(k, _)| k.dims()[1])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the kept tensors hold.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }
}

impl Clip {
    /// As `text_tokens_padded`, also keeping each prompt's keys and values (its first
    /// `lengths[b]` positions) for `text_padding`.
    pub fn text_tokens_keeping(
        &self,
        ids: &Tensor,
        lengths: &[usize],
    ) -> Result<(Tensor, Vec<TextKv>)> {
        let (b, t) = ids.dims2()?;
        if lengths.len() != b {
            candle_core::bail!("{} lengths for {b} sequences", lengths.len());
        }
        let text = &self.text;
        let mut x = text.embed(ids, 0)?;
        let mask = padded_causal_mask(t, lengths, x.device())?;
        let mut kept: Vec<Vec<(Tensor, Tensor)>> = vec![Vec::new(); b];
        for layer in text.encoder.layers() {
            let (q, k, v) = layer.qkv(&x)?;
            for (i, kv) in kept.iter_mut().enumerate() {
                let len = lengths[i].min(t);
                kv.push((
                    k.get(i)?.narrow(1, 0, len)?.contiguous()?,
                    v.get(i)?.narrow(1, 0, len)?.contiguous()?,
                ));
            }
            let weights = q.matmul(&k.t()?)?.broadcast_add(&mask)?;
            let weights = train_ops::softmax_last_dim(&weights)?;
            x = (&x + layer.attend(&weights, &v)?)?;
            x = (&x + layer.mlp(&x)?)?;
        }
        let tokens = self
            .text_projection
            .forward(&text.final_norm.forward(&x)?)?;
        let kv = kept.into_iter().map(|layers| TextKv { layers }).collect();
        Ok((tokens, kv))
    }

    /// (width − kv.len(), projection_dim): positions `kv.len()..width` of the prompt padded with
    /// `pad` to `width`, the rows `text_tokens_padded` gives there.
    pub fn text_padding(&self, kv: &TextKv, pad: u32, width: usize) -> Result<Tensor> {
        let (len, text) = (kv.len(), &self.text);
        if len == 0 || width <= len || kv.layers.len() != text.encoder.layers().len() {
            candle_core::bail!("no padding positions from {len} kept tokens to width {width}");
        }
        let n = width - len;
        let device = text.position_embedding.device();
        let ids = Tensor::from_vec(vec![pad; n], (1, n), device)?;
        let mut x = text.embed(&ids, len)?;
        for (layer, (k, v)) in text.encoder.layers().iter().zip(&kv.layers) {
            // Every padding position sees every kept key and none of the other padding ones.
            let (q, _, _) = layer.qkv(&x)?;
            let weights = q.matmul(&k.unsqueeze(0)?.t()?)?;
            let weights = train_ops::softmax_last_dim(&weights)?;
            x = (&x + layer.attend(&weights, &v.unsqueeze(0)?)?)?;
            x = (&x + layer.mlp(&x)?)?;
        }
        self.text_projection
            .forward(&text.final_norm.forward(&x)?)?
            .squeeze(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::{max_diff, ClipConfig};
    use candle_core::{DType, Device};
    use candle_nn::VarBuilder;

    #[test]
    fn kept_tokens_and_their_padding_are_the_rows_of_one_padded_pass() {
        let mut config = ClipConfig::vit_b32();
        config.text.num_hidden_layers = 3;
        config.vision.num_hidden_layers = 1;
        let vm = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let clip = Clip::new(&config, false, vb).unwrap();
        let (width, pad) = (12, 7);
        let prompts: [&[u32]; 2] = [&[1, 5, 9, 2], &[1, 8, 3, 4, 6, 2]];
        let lengths: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
        let padded: Vec<u32> = prompts
            .iter()
            .flat_map(|p| {
                p.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, width - p.len()))
            })
            .collect();
        let ids = Tensor::from_vec(padded, (2, width), &Device::Cpu).unwrap();
        let whole = clip.text_tokens_padded(&ids, &lengths).unwrap();
        // Own tokens padded only to the longest prompt, with another pad id.
        let short: Vec<u32> = prompts
            .iter()
            .flat_map(|p| p.iter().copied().chain(std::iter::repeat_n(0, 6 - p.len())))
            .collect();
        let short = Tensor::from_vec(short, (2, 6), &Device::Cpu).unwrap();
        let (own, kv) = clip.text_tokens_keeping(&short, &lengths).unwrap();
        for (i, len) in lengths.iter().enumerate() {
            assert_eq!(kv[i].len(), *len);
            let rows = Tensor::cat(
                &[
                    own.get(i).unwrap().narrow(0, 0, *len).unwrap(),
                    clip.text_padding(&kv[i], pad, width).unwrap(),
                ],
                0,
            )
            .unwrap();
            let diff = max_diff(&rows, &whole.get(i).unwrap());
            assert!(diff < 1e-5, "prompt {i}: {diff}");
            // Another pad id gives other rows: the padding positions are really computed.
            let other = clip.text_padding(&kv[i], pad + 1, width).unwrap();
            let moved = max_diff(&other, &clip.text_padding(&kv[i], pad, width).unwrap());
            assert!(moved > 1e-4);
        }
        assert!(clip.text_padding(&kv[0], pad, 4).is_err());
    }
}
