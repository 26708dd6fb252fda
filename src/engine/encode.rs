//! Encoding: images through the vision tower, prompts through the text tower (with the
//! scorers' columns and SmartCLIP's masks when the model has them).

use candle_core::Tensor;

use super::cache::{Part, TextCache};
use super::types::{EncodedImage, EncodedPrompts};
use super::{LoadedModel, TEXT_BATCH};
use crate::clip::{self, TextKv};
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

    /// As `encode_prompts_cached`, leaving for later what the maps do not need for prompts not
    /// encoded yet: the DCSM scorers' columns (the prompt padded to the scorer's 30 or so
    /// tokens, where the maps need only its own) and SmartCLIP's pass (the whole context, 77
    /// positions). Returns the encodings and whether a part is still to come (`columns` or
    /// `smart` is then `None`); `encode_prompts_cached` on the same prompts then runs only the
    /// missing passes.
    pub fn encode_prompts_cached_quick(
        &self,
        prompts: &[String],
        cache: &mut TextCache,
    ) -> Result<(EncodedPrompts, bool), ModelError> {
        self.fill_cache(prompts, cache, false)?;
        let out = cache.assemble(prompts)?;
        cache.trim();
        let pending = (!self.scorers.is_empty() && out.columns.is_none())
            || (self.smartclip.is_some() && out.smart.is_none());
        Ok((out, pending))
    }

    /// Puts every prompt in `cache`, with the scorers' columns and SmartCLIP's part when
    /// `full`.
    fn fill_cache(
        &self,
        prompts: &[String],
        cache: &mut TextCache,
        full: bool,
    ) -> Result<(), ModelError> {
        if prompts.is_empty() {
            return Err(ModelError::Prompt("no prompts given".into()));
        }
        cache.bind(self.id);
        let misses = cache.misses(prompts);
        if !misses.is_empty() {
            let (fresh, kept) = self.encode_prompts_with(&misses, full)?;
            cache.insert(&misses, &fresh)?;
            cache.set_kept(&misses, kept);
        }
        if !full {
            return Ok(());
        }
        if let Some(s) = self.scorers.first() {
            let (lacking, tokenized) = cache.lacking(prompts, Part::Columns);
            if !lacking.is_empty() {
                let (columns, pad) = (s.config.columns, s.config.pad_id);
                let paper = s.config.mode == ColumnMode::Paper;
                // The quick pass's rows and keys, continued over the padding positions, where the
                // scorer reads the prompt as it is (a prompt too long or rewritten gets a pass).
                let mut shared = Vec::with_capacity(lacking.len());
                for (p, t) in lacking.iter().zip(&tokenized) {
                    let read_as_is = t.full_len <= columns && !(paper && paper_rewrite(p) != *p);
                    shared.push(match cache.kept(p) {
                        Some((tokens, kv)) if read_as_is && kv.len() == t.ids.len() => {
                            let padding = self
                                .clip_for("the scorer's columns")?
                                .text_padding(kv, pad, columns)?;
                            Some(Tensor::cat(&[tokens, &padding], 0)?)
                        }
                        _ => None,
                    });
                }
                let c = self.scorer_columns(&lacking, &tokenized, shared, columns, pad)?;
                cache.set_columns(&lacking, &c)?;
            }
        }
        let (lacking, tokenized) = cache.lacking(prompts, Part::Smart);
        if !lacking.is_empty() {
            if let Some(s) = self.smart_prompts(&tokenized)? {
                cache.set_smart(&lacking, &s)?;
            }
        }
        Ok(())
    }

    /// Runs the text tower on a batch of prompts (padded; the padding keys are masked, so every
    /// position up to a prompt's own EOS is independent of the padding). With scorers, the same
    /// pass yields their padded columns; prompts longer than the scorer's columns get a second,
    /// truncated pass.
    pub fn encode_prompts(&self, prompts: &[String]) -> Result<EncodedPrompts, ModelError> {
        Ok(self.encode_prompts_with(prompts, true)?.0)
    }

    /// `encode_prompts`, the scorers' columns and SmartCLIP's pass left out unless `full`: the
    /// text pass then pads only to the longest prompt and, where the model has a scorer, keeps
    /// each prompt's keys and values for its padding positions later (`Clip::text_padding`).
    fn encode_prompts_with(
        &self,
        prompts: &[String],
        full: bool,
    ) -> Result<(EncodedPrompts, Vec<TextKv>), ModelError> {
        if prompts.is_empty() {
            return Err(ModelError::Prompt("no prompts given".into()));
        }
        let tokenized = prompts
            .iter()
            .map(|p| self.tokenize(p))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(siglip) = self.siglip() {
            return Ok((self.encode_prompts_siglip(siglip, tokenized)?, Vec::new()));
        }
        let scorer_cfg = self
            .scorers
            .first()
            .filter(|_| full)
            .map(|s| (s.config.columns, s.config.pad_id));
        let (columns, pad) = scorer_cfg.unwrap_or((0, self.tokenizer.eos_id()));
        // Batches of bounded size keep peak memory flat for a thousand prompts at once.
        let mut tokens = Vec::with_capacity(tokenized.len());
        let mut pooled = Vec::with_capacity(tokenized.len());
        let mut scorer_cols: Vec<Option<Tensor>> = Vec::with_capacity(tokenized.len());
        let keep = !full && !self.scorers.is_empty();
        let mut kept = Vec::new();
        for chunk in tokenized.chunks(TEXT_BATCH) {
            let all = if keep {
                let ids = tokenizer::pad_ids(chunk, pad, 0, &self.device)?;
                let lengths: Vec<usize> = chunk.iter().map(|t| t.ids.len()).collect();
                let (all, kv) = self
                    .clip_for("the text pass")?
                    .text_tokens_keeping(&ids, &lengths)?;
                kept.extend(kv);
                all
            } else {
                self.text_pass(chunk, pad, columns)?
            };
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
        let smart = match full {
            true => self.smart_prompts(&tokenized)?,
            false => None,
        };
        let encoded = EncodedPrompts {
            tokenized,
            tokens,
            pooled,
            columns,
            smart,
        };
        Ok((encoded, kept))
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
