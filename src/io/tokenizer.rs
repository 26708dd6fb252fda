//! The tokenizer: CLIP's BPE (and SigLIP's SentencePiece kinds, `sp_tokenizer.rs`): ids, token
//! strings, word groups, truncation to the model's context.

use serde::Serialize;
use std::path::Path;
use std::str::FromStr;
use tokenizers::Tokenizer;

use super::pipeline::TextConvention;
use crate::error::ModelError;

/// The CLIP tokenizer shipped with clipscope (MIT, see assets/clip-tokenizer/README.md).
const BUNDLED: &[u8] = include_bytes!("../../assets/clip-tokenizer/tokenizer.json");

/// One word of a prompt and the token positions (`start..end`) of its BPE pieces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// A prompt turned into token ids, SOS … EOS, no padding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tokenized {
    pub text: String,
    pub ids: Vec<u32>,
    /// Vocabulary strings of the tokens (`red</w>`), as `transformers` shows them.
    pub tokens: Vec<String>,
    /// Readable labels of the tokens (`SOS`, `red`, `EOS`).
    pub labels: Vec<String>,
    /// The words, in order; SOS and EOS are words of their own.
    pub words: Vec<Word>,
    /// The prompt had more tokens than the model's context and was cut.
    pub truncated: bool,
    /// The token count before truncation.
    pub full_len: usize,
    /// The text the BPE read, when the model's clean-up changed the prompt (OpenAI-format
    /// models: ftfy, HTML entities).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleaned: Option<String>,
    /// The model pools its text at the last position of the padded context (SigLIP), not at
    /// the first end-of-text token.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pools_last: bool,
}

impl Tokenized {
    /// Position of the first end-of-text token, where the text embedding is pooled (OpenAI's
    /// `argmax` of the ids and `transformers`' first `eos_token_id` agree on it). A prompt that
    /// spells `<|endoftext|>` pools there.
    pub fn eos_index(&self) -> usize {
        let last = self.ids.len() - 1;
        if self.pools_last {
            return last;
        }
        let eos = self.ids[last];
        self.ids.iter().position(|&i| i == eos).unwrap_or(last)
    }

    /// The prompt holds a literal `<|endoftext|>` before its end: the words after it do not
    /// reach the pooled embedding.
    pub fn pools_early(&self) -> bool {
        self.eos_index() + 1 < self.ids.len()
    }

    /// The first token of the first word that carries content: not SOS or EOS, not an article,
    /// not punctuation ("red" in "a red circle").
    pub fn first_content_token(&self) -> Option<usize> {
        let last = self.ids.len().saturating_sub(1);
        let first = usize::from(!self.pools_last);
        self.words
            .iter()
            .filter(|w| w.start >= first && w.start < last)
            .find(|w| {
                w.text.chars().any(char::is_alphanumeric)
                    && !matches!(w.text.to_lowercase().as_str(), "a" | "an" | "the")
            })
            .map(|w| w.start)
    }
}

/// Tokenised prompts as one (B, T) id tensor, each row padded with `pad` to the longest or to
/// `min_width`, whichever is wider.
pub fn pad_ids(
    tokenized: &[Tokenized],
    pad: u32,
    min_width: usize,
    device: &candle_core::Device,
) -> candle_core::Result<candle_core::Tensor> {
    let longest = tokenized.iter().map(|t| t.ids.len()).max().unwrap_or(2);
    let width = longest.max(min_width);
    let mut ids = Vec::with_capacity(width * tokenized.len());
    for t in tokenized {
        ids.extend(t.ids.iter().copied());
        ids.extend(std::iter::repeat_n(pad, width - t.ids.len()));
    }
    candle_core::Tensor::from_vec(ids, (tokenized.len(), width), device)
}

/// How a SentencePiece kind reads text.
#[derive(Debug, Clone)]
pub struct SpText {
    /// `spiece.model` (the slow `SiglipTokenizer`): canonicalised text, a leading `▁`, literal
    /// special tokens split out first. Otherwise a `tokenizer.json` does everything itself.
    pub(super) slow: bool,
    /// The slow kind's SentencePiece normalisation.
    pub(super) normalizer: Option<super::spiece::SpNormalizer>,
    /// Special tokens (text, id), longest first.
    pub(super) specials: Vec<(String, u32)>,
}

/// Wraps a Hugging Face `tokenizers` tokenizer: CLIP's BPE, or a SentencePiece kind.
pub struct ClipTokenizer {
    pub(super) inner: Tokenizer,
    pub(super) sos: u32,
    pub(super) eos: u32,
    /// The id prompts are padded with.
    pub(super) pad: u32,
    pub(super) clean: TextConvention,
    /// SigLIP's kinds: no SOS, EOS appended, pieces marked with `▁`.
    pub(super) sentencepiece: Option<SpText>,
}

impl ClipTokenizer {
    /// The bundled CLIP tokenizer. It is parsed once per process (about 60 ms of JSON) and
    /// copied for every later model (a few ms), so switching models does not parse it again.
    pub fn bundled() -> Result<Self, ModelError> {
        static PARSED: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
        if let Some(parsed) = PARSED.get() {
            return Self::wrap(parsed.clone());
        }
        let inner = Tokenizer::from_bytes(BUNDLED).map_err(|e| ModelError::TokenizerLoad {
            what: "bundled tokenizer".to_string(),
            source: e,
        })?;
        let _ = PARSED.set(inner.clone());
        Self::wrap(inner)
    }

    /// A `tokenizer.json` from a model folder (at most 64 MiB; CLIP's is 3.6 MB).
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = super::read_small(path, 64 << 20)?;
        let inner = Tokenizer::from_str(&text).map_err(|e| ModelError::TokenizerLoad {
            what: format!("{}", path.display()),
            source: e,
        })?;
        Self::wrap(inner)
    }

    fn wrap(inner: Tokenizer) -> Result<Self, ModelError> {
        let id = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| {
                ModelError::Tokenizer(format!(
                    "the tokenizer has no {t} token: not a CLIP tokenizer"
                ))
            })
        };
        let sos = id("<|startoftext|>")?;
        let eos = id("<|endoftext|>")?;
        Ok(Self {
            inner,
            sos,
            eos,
            pad: eos,
            clean: TextConvention::Transformers,
            sentencepiece: None,
        })
    }

    /// The same tokenizer with the text clean-up of `convention` before BPE.
    pub fn with_clean(self, convention: TextConvention) -> Self {
        Self {
            clean: convention,
            ..self
        }
    }

    pub fn clean(&self) -> TextConvention {
        self.clean
    }

    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// The id prompts are padded with (CLIP: EOS; SigLIP: its tokenizer's pad token).
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// A SentencePiece tokenizer (SigLIP), which pools at the last padded position.
    pub fn is_sentencepiece(&self) -> bool {
        self.sentencepiece.is_some()
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenises one prompt, truncating to `context` tokens (SOS and EOS kept).
    pub fn encode(&self, text: &str, context: usize) -> Result<Tokenized, ModelError> {
        if text.trim().is_empty() {
            return Err(ModelError::Prompt("the prompt is empty".into()));
        }
        if let Some(sp) = &self.sentencepiece {
            return self.encode_sentencepiece(sp, text, context);
        }
        let cleaned = match self.clean {
            TextConvention::Transformers => None,
            TextConvention::Openai => Some(super::ftfy::openai_clean(text)).filter(|c| c != text),
        };
        let bpe_text = cleaned.as_deref().unwrap_or(text);
        if bpe_text.trim().is_empty() {
            return Err(ModelError::Prompt(
                "the prompt is empty after the model's text clean-up".into(),
            ));
        }
        let enc = self
            .inner
            .encode(bpe_text, true)
            .map_err(|e| ModelError::TokenizerLoad {
                what: "encoding failed".into(),
                source: e,
            })?;
        let mut ids = enc.get_ids().to_vec();
        let mut tokens = enc.get_tokens().to_vec();
        let word_ids = enc.get_word_ids();
        let offsets = enc.get_offsets();
        if ids.first() != Some(&self.sos) || ids.last() != Some(&self.eos) {
            return Err(ModelError::Tokenizer(
                "the tokenizer does not add SOS/EOS: not a CLIP tokenizer".into(),
            ));
        }
        let full_len = ids.len();
        let truncated = full_len > context;
        if truncated {
            ids.truncate(context - 1);
            tokens.truncate(context - 1);
            ids.push(self.eos);
            tokens.push("<|endoftext|>".into());
        }
        let n = ids.len();
        let labels = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| self.label(id, i == 0, i + 1 == n))
            .collect();
        // Group consecutive pieces of the same word; SOS and EOS stand alone.
        let mut words: Vec<Word> = Vec::new();
        let mut last_word: Option<u32> = None;
        for i in 0..n {
            let special = i == 0 || i + 1 == n;
            let word_id = if special { None } else { word_ids[i] };
            match (word_id, words.last_mut()) {
                (Some(w), Some(prev)) if last_word == Some(w) => prev.end = i + 1,
                _ => {
                    let text = if i == 0 {
                        "SOS".to_string()
                    } else if i + 1 == n {
                        "EOS".to_string()
                    } else {
                        self.word_text(bpe_text, offsets, word_ids, i)
                    };
                    words.push(Word {
                        text,
                        start: i,
                        end: i + 1,
                    });
                }
            }
            last_word = word_id;
        }
        Ok(Tokenized {
            text: text.to_string(),
            ids,
            tokens,
            labels,
            words,
            truncated,
            full_len,
            cleaned,
            pools_last: false,
        })
    }

    fn label(&self, id: u32, first: bool, last: bool) -> String {
        if first && id == self.sos {
            return "SOS".into();
        }
        if last && id == self.eos {
            return "EOS".into();
        }
        match self.inner.decode(&[id], false) {
            Ok(s) if !s.replace("</w>", "").trim().is_empty() => {
                s.replace("</w>", "").trim().to_string()
            }
            _ => self.inner.id_to_token(id).unwrap_or_default(),
        }
    }

    /// The original text of the word that token `i` belongs to (from the byte offsets).
    fn word_text(
        &self,
        text: &str,
        offsets: &[(usize, usize)],
        word_ids: &[Option<u32>],
        i: usize,
    ) -> String {
        let w = word_ids[i];
        let (mut start, mut end) = offsets[i];
        for (j, o) in offsets.iter().enumerate().skip(i) {
            if word_ids[j] != w {
                break;
            }
            start = start.min(o.0);
            end = end.max(o.1);
        }
        text.get(start..end).unwrap_or("?").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids_and_words() {
        let t = ClipTokenizer::bundled().unwrap();
        let r = t.encode("a red square", 77).unwrap();
        assert_eq!(r.ids, vec![49406, 320, 736, 3999, 49407]);
        assert_eq!(r.labels, vec!["SOS", "a", "red", "square", "EOS"]);
        assert_eq!(r.tokens[2], "red</w>");
        let words: Vec<&str> = r.words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(words, vec!["SOS", "a", "red", "square", "EOS"]);
        assert!(!r.truncated);
    }

    #[test]
    fn the_first_content_word_skips_sos_and_articles() {
        let t = ClipTokenizer::bundled().unwrap();
        let first = |text: &str| {
            let r = t.encode(text, 77).unwrap();
            r.first_content_token().map(|i| r.labels[i].clone())
        };
        assert_eq!(first("a red square").as_deref(), Some("red"));
        assert_eq!(first("An orange circle").as_deref(), Some("orange"));
        assert_eq!(first("the , dog").as_deref(), Some("dog"));
        assert_eq!(first("a"), None);
        assert!(
            t.encode("", 77).is_err(),
            "empty prompts are refused before this"
        );
    }

    #[test]
    fn multi_piece_words_are_grouped() {
        let t = ClipTokenizer::bundled().unwrap();
        let r = t.encode("a xylophonist", 77).unwrap();
        let word = r.words.iter().find(|w| w.text == "xylophonist").unwrap();
        assert!(word.end - word.start > 1, "{:?}", r.words);
        assert_eq!(r.words.last().unwrap().text, "EOS");
    }

    #[test]
    fn long_prompts_are_truncated_and_flagged() {
        let t = ClipTokenizer::bundled().unwrap();
        let long = "red ".repeat(300);
        let r = t.encode(&long, 77).unwrap();
        assert_eq!(r.ids.len(), 77);
        assert_eq!(*r.ids.last().unwrap(), 49407);
        assert!(r.truncated);
        assert_eq!(r.full_len, 302);
        assert_eq!(r.words.last().unwrap().end, 77);
    }

    #[test]
    fn empty_prompts_are_refused() {
        let t = ClipTokenizer::bundled().unwrap();
        for p in ["", "   \n\t"] {
            assert!(t.encode(p, 77).unwrap_err().to_string().contains("empty"));
        }
    }

    #[test]
    fn a_literal_end_of_text_pools_early() {
        let t = ClipTokenizer::bundled().unwrap();
        let r = t.encode("a dog <|endoftext|> with a hat", 77).unwrap();
        assert!(r.pools_early(), "{:?}", r.ids);
        assert_eq!(r.ids[r.eos_index()], 49407);
        assert_eq!(r.eos_index(), 3);
        let plain = t.encode("a dog with a hat", 77).unwrap();
        assert!(!plain.pools_early());
        assert_eq!(plain.eos_index(), plain.ids.len() - 1);
    }

    #[test]
    fn openai_clean_up_changes_the_ids() {
        let plain = ClipTokenizer::bundled().unwrap();
        let openai = ClipTokenizer::bundled()
            .unwrap()
            .with_clean(TextConvention::Openai);
        let text = "it’s a cat &amp; a dog";
        let a = plain.encode(text, 77).unwrap();
        let b = openai.encode(text, 77).unwrap();
        assert_ne!(a.ids, b.ids);
        assert_eq!(b.cleaned.as_deref(), Some("it's a cat & a dog"));
        assert_eq!(b.ids, plain.encode("it's a cat & a dog", 77).unwrap().ids);
        assert!(openai.encode("&nbsp;", 77).is_err());
    }

    #[test]
    fn mixed_scripts_and_emoji_tokenise() {
        let t = ClipTokenizer::bundled().unwrap();
        let r = t.encode("un chien 🐶 犬 собака", 77).unwrap();
        assert!(r.ids.len() > 5);
        assert_eq!(r.words.first().unwrap().text, "SOS");
    }
}
