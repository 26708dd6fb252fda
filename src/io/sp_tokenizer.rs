//! SigLIP's tokenizers as `transformers` runs them: `spiece.model` read with `SiglipTokenizer`'s
//! clean-up (SigLIP), or a `tokenizer.json` with its own normaliser and post-processor (SigLIP 2,
//! Gemma's kind). No SOS; EOS ends the prompt; a `▁` starts each word.

use std::path::Path;
use std::str::FromStr;
use tokenizers::{Encoding, Tokenizer, TruncationDirection};

use super::pipeline::TextConvention;
use super::spiece;
use super::tokenizer::{ClipTokenizer, SpText, Tokenized, Word};
use crate::error::ModelError;

/// SentencePiece's word marker.
const MARK: char = '▁';

/// A token named in `tokenizer_config.json` (a string or `{"content": …}`).
fn named_token(config: Option<&serde_json::Value>, key: &str) -> Option<String> {
    let v = config?.get(key)?;
    v.as_str()
        .map(str::to_string)
        .or_else(|| v.get("content")?.as_str().map(str::to_string))
}

fn parse_config(text: Option<&str>) -> Result<Option<serde_json::Value>, ModelError> {
    text.map(|t| {
        serde_json::from_str(t).map_err(|e| ModelError::Json {
            what: "tokenizer_config.json is not valid".into(),
            source: e,
        })
    })
    .transpose()
}

impl ClipTokenizer {
    fn sentencepiece_kind(
        inner: Tokenizer,
        config: Option<&serde_json::Value>,
        normalizer: Option<spiece::SpNormalizer>,
        fallback_pad: Option<u32>,
    ) -> Result<Self, ModelError> {
        let slow = normalizer.is_some();
        let id_of = |name: &str| inner.token_to_id(name);
        let eos_name = named_token(config, "eos_token").unwrap_or_else(|| "</s>".into());
        let eos = id_of(&eos_name).ok_or_else(|| {
            ModelError::Tokenizer(format!("the tokenizer has no end-of-text token {eos_name}"))
        })?;
        let pad = match named_token(config, "pad_token") {
            Some(name) => id_of(&name).ok_or_else(|| {
                ModelError::Tokenizer(format!("the tokenizer has no pad token {name}"))
            })?,
            None if slow => eos,
            None => fallback_pad.unwrap_or(eos),
        };
        let mut specials: Vec<(String, u32)> = ["eos_token", "pad_token", "unk_token"]
            .iter()
            .filter_map(|k| named_token(config, k))
            .chain(["</s>".to_string()])
            .filter_map(|name| id_of(&name).map(|id| (name, id)))
            .collect();
        specials.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        specials.dedup();
        Ok(Self {
            inner,
            sos: u32::MAX,
            eos,
            pad,
            clean: TextConvention::Transformers,
            sentencepiece: Some(SpText {
                slow,
                normalizer,
                specials,
            }),
        })
    }

    /// `spiece.model` (+ the folder's `tokenizer_config.json` text) as `SiglipTokenizer`.
    pub fn from_spiece(path: &Path, config: Option<&str>) -> Result<Self, ModelError> {
        let bytes = super::read_bounded(path, 64 << 20)?;
        let model = spiece::read_model(&bytes)?;
        let inner = spiece::to_tokenizer(&model)?;
        let normalizer = Some(spiece::SpNormalizer::of(&model)?);
        Self::sentencepiece_kind(inner, parse_config(config)?.as_ref(), normalizer, None)
    }

    /// A SentencePiece-style `tokenizer.json` (SigLIP 2): the file's normaliser, model and
    /// post-processor; `fallback_pad` (the model's `pad_token_id`) when no pad token is named.
    pub fn from_sentencepiece_json(
        path: &Path,
        config: Option<&str>,
        fallback_pad: Option<u32>,
    ) -> Result<Self, ModelError> {
        let text = super::read_small(path, 64 << 20)?;
        let inner = Tokenizer::from_str(&text).map_err(|e| ModelError::TokenizerLoad {
            what: format!("{}", path.display()),
            source: e,
        })?;
        let pad = fallback_pad.or_else(|| inner.get_padding().map(|p| p.pad_id));
        Self::sentencepiece_kind(inner, parse_config(config)?.as_ref(), None, pad)
    }

    fn pieces(&self, text: &str) -> Result<Encoding, ModelError> {
        self.inner
            .encode(text, false)
            .map_err(|e| ModelError::TokenizerLoad {
                what: "encoding failed".into(),
                source: e,
            })
    }

    /// Ids of the slow kind: special tokens split out, each piece of text canonicalised,
    /// normalised and escaped (`SiglipTokenizer.tokenize` → `_tokenize`, whose `<unk>` prefix
    /// trick leaves SentencePiece's normalised text without its dummy prefix; the first piece
    /// keeps the `▁` `tokenize` puts in front), EOS appended unless already last.
    fn slow_ids(&self, sp: &SpText, text: &str) -> Result<Vec<u32>, ModelError> {
        let marked = format!("{MARK}{}", text.replace(MARK, " "));
        let mut ids = Vec::new();
        let mut rest = marked.as_str();
        loop {
            let next = sp
                .specials
                .iter()
                .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by_key(|&(at, len, _)| (at, std::cmp::Reverse(len)));
            let (segment, special) = match next {
                Some((at, len, id)) => {
                    let seg = &rest[..at];
                    rest = rest[at + len..].trim_start();
                    (seg.trim_end(), Some(id))
                }
                None => (rest, None),
            };
            let first = segment.starts_with(MARK);
            let canonical = spiece::canonicalize(segment.trim_start_matches(MARK));
            let normal = match &sp.normalizer {
                Some(n) => n.apply(&canonical)?,
                None => canonical,
            };
            // SentencePiece strips trailing whitespace: a lone `▁` vanishes with nothing after it.
            let canonical = if normal.is_empty() {
                normal
            } else if first {
                format!("{MARK}{}", normal.replace(' ', &MARK.to_string()))
            } else {
                normal.replace(' ', &MARK.to_string())
            };
            if !canonical.is_empty() {
                let enc = self.pieces(&canonical)?;
                let lone_mark = ids.is_empty() && enc.get_tokens() == [MARK.to_string()];
                if !(lone_mark && special.is_some()) {
                    ids.extend_from_slice(enc.get_ids());
                }
            }
            match special {
                Some(id) => ids.push(id),
                None => break,
            }
        }
        if ids.last() != Some(&self.eos) {
            ids.push(self.eos);
        }
        Ok(ids)
    }

    /// Tokenises one prompt of a SentencePiece kind, truncating to `context` (EOS kept).
    pub(super) fn encode_sentencepiece(
        &self,
        sp: &SpText,
        text: &str,
        context: usize,
    ) -> Result<Tokenized, ModelError> {
        let (ids, full_len) = if sp.slow {
            let mut ids = self.slow_ids(sp, text)?;
            let full = ids.len();
            if full > context {
                ids.truncate(context - 1);
                ids.push(self.eos);
            }
            (ids, full)
        } else {
            let mut enc = self.pieces(text)?;
            let added = self
                .inner
                .get_post_processor()
                .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
            let full = enc.len() + added;
            if full > context {
                enc.truncate(context.saturating_sub(added), 0, TruncationDirection::Right);
            }
            let out = self.inner.post_process(enc, None, true).map_err(|e| {
                ModelError::TokenizerLoad {
                    what: "post-processing failed".into(),
                    source: e,
                }
            })?;
            (out.get_ids().to_vec(), full)
        };
        self.finish(text, ids, full_len)
    }

    /// Labels and words of SentencePiece ids: a piece starting with `▁` starts a word; special
    /// tokens stand alone.
    fn finish(&self, text: &str, ids: Vec<u32>, full_len: usize) -> Result<Tokenized, ModelError> {
        if ids.iter().all(|&i| i == self.eos) {
            return Err(ModelError::Prompt(
                "the prompt is empty after the model's text clean-up".into(),
            ));
        }
        let specials: Vec<u32> = self
            .sentencepiece
            .as_ref()
            .map(|s| s.specials.iter().map(|(_, id)| *id).collect())
            .unwrap_or_default();
        let n = ids.len();
        let tokens: Vec<String> = ids
            .iter()
            .map(|&id| self.inner.id_to_token(id).unwrap_or_default())
            .collect();
        let mut labels = Vec::with_capacity(n);
        let mut words: Vec<Word> = Vec::new();
        for (i, (id, piece)) in ids.iter().zip(&tokens).enumerate() {
            let special = specials.contains(id);
            let label = if i + 1 == n && *id == self.eos {
                "EOS".to_string()
            } else {
                match piece.trim_start_matches(MARK) {
                    "" => MARK.to_string(),
                    rest => rest.to_string(),
                }
            };
            let starts = special || piece.starts_with(MARK) || i == 0;
            let continues = !starts
                && words
                    .last()
                    .is_some_and(|w| !specials.contains(&ids[w.start]));
            match words.last_mut() {
                Some(w) if continues => {
                    w.text.push_str(&label);
                    w.end = i + 1;
                }
                _ => words.push(Word {
                    text: label.clone(),
                    start: i,
                    end: i + 1,
                }),
            }
            labels.push(label);
        }
        Ok(Tokenized {
            text: text.to_string(),
            truncated: full_len > n,
            full_len,
            ids,
            tokens,
            labels,
            words,
            cleaned: None,
            pools_last: true,
        })
    }
}
