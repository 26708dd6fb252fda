//! The sizes a `config.json` may claim: limits no real checkpoint reaches, checked before anything
//! is allocated, and the parameter count they imply.

use super::config::ClipConfig;
use crate::error::ModelError;

impl ClipConfig {
    /// Refuses sizes no real checkpoint has before anything is allocated for them: each size
    /// against a generous limit, then the parameter count (checked arithmetic) against 16 G.
    pub(super) fn within_limits(&self) -> Result<(), ModelError> {
        let (t, v) = (&self.text, &self.vision);
        let limits = [
            ("text hidden_size", t.hidden_size, 16_384),
            ("text intermediate_size", t.intermediate_size, 131_072),
            ("text num_hidden_layers", t.num_hidden_layers, 256),
            ("text num_attention_heads", t.num_attention_heads, 1_024),
            (
                "text max_position_embeddings",
                t.max_position_embeddings,
                65_536,
            ),
            ("text vocab_size", t.vocab_size, 4_000_000),
            ("vision hidden_size", v.hidden_size, 16_384),
            ("vision intermediate_size", v.intermediate_size, 131_072),
            ("vision num_hidden_layers", v.num_hidden_layers, 256),
            ("vision num_attention_heads", v.num_attention_heads, 1_024),
            ("vision image_size", v.image_size, 8_192),
            ("vision patch_size", v.patch_size, 1_024),
            ("projection_dim", self.projection_dim, 16_384),
        ];
        for (name, value, limit) in limits {
            if value > limit {
                return Err(ModelError::Config(format!(
                    "{name} is {value}, beyond any real checkpoint (at most {limit})"
                )));
            }
        }
        let grid = v.image_size / v.patch_size;
        if grid * grid > 65_536 {
            return Err(ModelError::Config(format!(
                "{grid}×{grid} patches ({} px in patches of {}) is too many image tokens",
                v.image_size, v.patch_size
            )));
        }
        let params = self.parameter_count().filter(|p| *p <= 16_000_000_000);
        match params {
            Some(_) => Ok(()),
            None => Err(ModelError::Config(
                "these sizes make over 16 G parameters: not a loadable CLIP".into(),
            )),
        }
    }

    /// The towers' parameter count (matrices only), `None` on overflow.
    pub fn parameter_count(&self) -> Option<u64> {
        let tower = |width: usize, mlp: usize, layers: usize| -> Option<u64> {
            let (w, m) = (width as u64, mlp as u64);
            let layer = w
                .checked_mul(w)?
                .checked_mul(4)?
                .checked_add(w.checked_mul(m)?.checked_mul(2)?)?;
            layer.checked_mul(layers as u64)
        };
        let (t, v) = (&self.text, &self.vision);
        let embeddings = (t.vocab_size as u64).checked_mul(t.hidden_size as u64)?;
        let patches = (v.patch_size as u64)
            .checked_mul(v.patch_size as u64)?
            .checked_mul(3 * v.hidden_size as u64)?;
        tower(t.hidden_size, t.intermediate_size, t.num_hidden_layers)?
            .checked_add(tower(
                v.hidden_size,
                v.intermediate_size,
                v.num_hidden_layers,
            )?)?
            .checked_add(embeddings)?
            .checked_add(patches)
    }
}
