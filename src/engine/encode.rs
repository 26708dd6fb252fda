//! Encoding: images through the vision tower, prompts through the text tower (with the
//! scorers' columns and SmartCLIP's masks when the model has them).

use candle_core::Tensor;

use super::cache::TextCache;
use super::types::{EncodedImage, EncodedPrompts};
use super::{LoadedModel, TEXT_BATCH};
use crate::clip;
use crate::dcsm::columns::paper_rewrite;
use crate::dcsm::scorer::{word_token_starts, ColumnMode};
use crate::dcsm::{self, ScorerColumns};
use crate::error::ModelError;
use crate::io::preprocess::{self, Preprocessed};
use crate::io::tokenizer::{self, Tokenized};
use crate::smartclip::{self, SmartPrompts};

impl LoadedModel {
    /// Preprocesses an image the way this model expects.
    pub fn preprocess(&self, image: &image::DynamicImage) -> Preprocessed {
        preprocess::preprocess(image, &self.preprocess)
    }

    /// Preprocesses a decoded file (palette files resize as their references resize them).
    pub fn preprocess_decoded(&self, image: &preprocess::Decoded) -> Preprocessed {
        preprocess::preprocess_decoded(image, &self.preprocess)
    }

    /// Runs the vision tower on a preprocessed image.
    pub fn encode_pixels(&self, pre: &Preprocessed) -> Result<EncodedImage, ModelError> {
        let s = pre.side;
        let pixels = Tensor::from_slice(&pre.pixels, (1, 3, s, s), &self.device)?;
        let (tokens, pooled, cls_row) = match self.siglip() {
            Some(siglip) => {
                let out = siglip.image(&pixels)?;
                (out.dense.squeeze(0)?, out.pooled, false)
            }
            None => {
                let tokens = self
                    .clip_for("encoding")?
                    .image_tokens(&pixels)?
                    .squeeze(0)?;
                let pooled = tokens.narrow(0, 0, 1)?;
                (tokens, pooled, true)
            }
        };
        let normalized = clip::l2_normalize(&tokens)?;
        Ok(EncodedImage {
            tokens,
            normalized,
            pooled,
            cls_row,
            grid: self.grid(),
            crop: pre.crop,
            original: pre.original,
        })
    }

    /// Decodes nothing: preprocesses and encodes an already decoded image.
    pub fn encode_image(&self, image: &image::DynamicImage) -> Result<EncodedImage, ModelError> {
        self.encode_pixels(&self.preprocess(image))
    }

    /// Preprocesses and encodes a decoded file.
    pub fn encode_decoded(&self, image: &preprocess::Decoded) -> Result<EncodedImage, ModelError> {
        self.encode_pixels(&self.preprocess_decoded(image))
    }

    /// Tokenises (truncating to the context) without running the model.
    pub fn tokenize(&self, prompt: &str) -> Result<Tokenized, ModelError> {
        self.tokenizer
            .encode(prompt, self.config().text.max_position_embeddings)
    }

    /// Encodes prompts, reusing the encodings `cache` holds: after an edit only the changed
    /// prompt runs through the text tower. A cache filled by another model (or before a head
    /// changed) is emptied first.
    pub fn encode_prompts_cached(
        &self,
        prompts: &[String],
        cache: &mut TextCache,
    ) -> Result<EncodedPrompts, ModelError> {
        self.fill_cache(prompts, cache, true)?;
        let out = cache.assemble(prompts);
        cache.trim();
        out
    }

    /// As `encode_prompts_cached`, without SmartCLIP's pass for prompts not encoded yet: on a
    /// large model that pass (the whole context, 77 positions) costs several times the plain
    /// one, and the maps do not need it. Returns the encodings and whether SmartCLIP's part is
    /// still to come (`smart` is then `None`); `encode_prompts_cached` on the same prompts
    /// then runs only the missing SmartCLIP passes.
    pub fn encode_prompts_cached_quick(
        &self,
        prompts: &[String],
        cache: &mut TextCache,
    ) -> Result<(EncodedPrompts, bool), ModelError> {
        self.fill_cache(prompts, cache, false)?;
        let out = cache.assemble(prompts)?;
        cache.trim();
        let pending = self.smartclip.is_some() && out.smart.is_none();
        Ok((out, pending))
    }

    /// Puts every prompt in `cache`, SmartCLIP's part too when `smart`.
    fn fill_cache(
        &self,
        prompts: &[String],
        cache: &mut TextCache,
        smart: bool,
    ) -> Result<(), ModelError> {
        if prompts.is_empty() {
            return Err(ModelError::Prompt("no prompts given".into()));
        }
        cache.bind(self.id);
        let misses = cache.misses(prompts);
        if !misses.is_empty() {
            let fresh = self.encode_prompts_with(&misses, smart)?;
            cache.insert(&misses, &fresh)?;
        }
        if smart {
            let (lacking, tokenized) = cache.lacking_smart(prompts);
            if !lacking.is_empty() {
                if let Some(s) = self.smart_prompts(&tokenized)? {
                    cache.set_smart(&lacking, &s)?;
                }
            }
        }
        Ok(())
    }

    /// Runs the text tower on a batch of prompts (padded; the padding keys are masked, so every
    /// position up to a prompt's own EOS is independent of the padding). With scorers, the same
    /// pass yields their padded columns; prompts longer than the scorer's columns get a second,
    /// truncated pass.
    pub fn encode_prompts(&self, prompts: &[String]) -> Result<EncodedPrompts, ModelError> {
        self.encode_prompts_with(prompts, true)
    }

    /// `encode_prompts`, SmartCLIP's pass left out unless `smart`.
    fn encode_prompts_with(
        &self,
        prompts: &[String],
        smart: bool,
    ) -> Result<EncodedPrompts, ModelError> {
        if prompts.is_empty() {
            return Err(ModelError::Prompt("no prompts given".into()));
        }
        let tokenized = prompts
            .iter()
            .map(|p| self.tokenize(p))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(siglip) = self.siglip() {
            return self.encode_prompts_siglip(siglip, tokenized);
        }
        let scorer_cfg = self
            .scorers
            .first()
            .map(|s| (s.config.columns, s.config.pad_id));
        let (columns, pad) = scorer_cfg.unwrap_or((0, self.tokenizer.eos_id()));
        // Batches of bounded size keep peak memory flat for a thousand prompts at once.
        let mut tokens = Vec::with_capacity(tokenized.len());
        let mut pooled = Vec::with_capacity(tokenized.len());
        let mut scorer_cols: Vec<Option<Tensor>> = Vec::with_capacity(tokenized.len());
        for chunk in tokenized.chunks(TEXT_BATCH) {
            let all = self.text_pass(chunk, pad, columns)?;
            for (b, t) in chunk.iter().enumerate() {
                let row = all.get(b)?;
                tokens.push(row.narrow(0, 0, t.ids.len())?);
                pooled.push(row.get(t.eos_index())?);
                let fits = scorer_cfg.is_some() && t.full_len <= columns;
                scorer_cols.push(fits.then(|| row.narrow(0, 0, columns)).transpose()?);
            }
        }
        let columns = match scorer_cfg {
            None => None,
            Some((c, pad)) => {
                Some(self.scorer_columns(prompts, &tokenized, scorer_cols, c, pad)?)
            }
        };
        let smart = match smart {
            true => self.smart_prompts(&tokenized)?,
            false => None,
        };
        Ok(EncodedPrompts {
            tokenized,
            tokens,
            pooled,
            columns,
            smart,
        })
    }

    /// SmartCLIP's mask logits and text embeddings of tokenised prompts (`None` without a mask
    /// network).
    fn smart_prompts(&self, tokenized: &[Tokenized]) -> Result<Option<SmartPrompts>, ModelError> {
        match &self.smartclip {
            Some(net) => Ok(Some(smartclip::encode_prompts(
                net,
                self.clip_for("SmartCLIP")?,
                tokenized,
                TEXT_BATCH,
            )?)),
            None => Ok(None),
        }
    }

    /// (B, max(longest, min_width), D) text tokens of tokenised prompts padded with `pad`.
    fn text_pass(
        &self,
        chunk: &[Tokenized],
        pad: u32,
        min_width: usize,
    ) -> Result<Tensor, ModelError> {
        let ids = tokenizer::pad_ids(chunk, pad, min_width, &self.device)?;
        let lengths: Vec<usize> = chunk.iter().map(|t| t.ids.len()).collect();
        Ok(self
            .clip_for("the text pass")?
            .text_tokens_padded(&ids, &lengths)?)
    }

    /// The scorer's columns of every prompt: taken from the shared pass where the prompt fits
    /// and the scorer reads it unchanged, else from a pass over the text the scorer reads (the
    /// paper's rewriting in `paper` mode), truncated to the scorer's columns.
    fn scorer_columns(
        &self,
        prompts: &[String],
        display: &[Tokenized],
        mut shared: Vec<Option<Tensor>>,
        columns: usize,
        pad: u32,
    ) -> Result<ScorerColumns, ModelError> {
        let paper = self
            .scorers
            .first()
            .is_some_and(|s| s.config.mode == ColumnMode::Paper);
        let read: Vec<String> = prompts
            .iter()
            .map(|p| if paper { paper_rewrite(p) } else { p.clone() })
            .collect();
        for ((c, p), r) in shared.iter_mut().zip(prompts).zip(&read) {
            if p != r {
                *c = None;
            }
        }
        let long: Vec<String> = read
            .iter()
            .zip(&shared)
            .filter(|(_, c)| c.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        let cut = if long.is_empty() {
            None
        } else {
            Some(self.encode_columns(&long, columns, pad)?)
        };
        let (mut tokenized, mut word_starts, mut cols) = (Vec::new(), Vec::new(), Vec::new());
        let mut next_long = 0;
        for (t, c) in display.iter().zip(shared) {
            match (c, &cut) {
                (Some(c), _) => {
                    tokenized.push(t.clone());
                    word_starts.push(word_token_starts(&self.tokenizer, &t.text));
                    cols.push(clip::l2_normalize(&c)?);
                }
                (None, cut) => {
                    // `cut` holds every prompt without shared columns.
                    let cut = cut.as_ref().ok_or_else(|| {
                        ModelError::Prompt("internal: a prompt has no scorer columns".into())
                    })?;
                    tokenized.push(cut.tokenized[next_long].clone());
                    word_starts.push(cut.word_starts[next_long].clone());
                    cols.push(cut.normalized.get(next_long)?);
                    next_long += 1;
                }
            }
        }
        Ok(ScorerColumns {
            tokenized,
            word_starts,
            normalized: Tensor::stack(&cols, 0)?,
        })
    }

    /// Prompts as a scorer reads them: tokenised to `columns` tokens, padded with `pad`
    /// (padding keys masked), projected and L2-normalised: (K, columns, D).
    pub fn encode_columns(
        &self,
        prompts: &[String],
        columns: usize,
        pad: u32,
    ) -> Result<ScorerColumns, ModelError> {
        let tokenized = prompts
            .iter()
            .map(|p| self.tokenizer.encode(p, columns))
            .collect::<Result<Vec<_>, _>>()?;
        let mut parts = Vec::new();
        for chunk in tokenized.chunks(TEXT_BATCH) {
            parts.push(self.text_pass(chunk, pad, columns)?);
        }
        Ok(ScorerColumns::new(
            &self.tokenizer,
            tokenized,
            clip::l2_normalize(&Tensor::cat(&parts, 0)?)?,
        ))
    }

    /// (K, rows, columns) scorer maps of the prompts against the image.
    pub fn scorer_maps(
        &self,
        image: &EncodedImage,
        columns: &ScorerColumns,
    ) -> Result<Tensor, ModelError> {
        dcsm::columns::maps(&image.normalized, columns)
    }
}
