//! Text encodings kept per prompt across calls, so a prompt edit re-encodes only the prompt that
//! changed. The caller owns the cache (the worker does), as candle-transformers' llama.rs
//! callers own its `Cache`: the engine itself holds no state between calls.

use candle_core::Tensor;
use std::collections::{BTreeMap, HashMap};

use super::types::{tensor_bytes, EncodedPrompts};
use crate::dcsm::ScorerColumns;
use crate::error::ModelError;
use crate::io::tokenizer::Tokenized;
use crate::smartclip::SmartPrompts;

/// Bytes of encodings a default cache keeps (about 600 prompts of a ViT-B/16, 4,000 of the
/// default model).
pub const DEFAULT_BUDGET: usize = 128 << 20;

/// One prompt's share of an `EncodedPrompts`.
#[derive(Debug, Clone)]
struct Entry {
    tokenized: Tokenized,
    tokens: Tensor,
    /// The pooled text embedding (D,).
    pooled: Tensor,
    /// Scorer columns: tokens, word starts, normalised (columns, D).
    columns: Option<(Tokenized, Vec<usize>, Tensor)>,
    smart: Option<(Tensor, Tensor)>,
    /// Bytes of the entry's tensors.
    bytes: usize,
    /// When it was last asked for (a tick of the cache's clock).
    used: u64,
}

/// Prompt text → its encodings, the least recently used evicted first once the entries hold
/// more bytes than the budget.
#[derive(Debug)]
pub struct TextCache {
    entries: HashMap<String, Entry>,
    /// Last use → prompt, oldest first.
    by_use: BTreeMap<u64, String>,
    clock: u64,
    bytes: usize,
    budget: usize,
    /// The model (with its heads) whose encodings these are.
    model: Option<u64>,
}

impl Default for TextCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET)
    }
}

impl TextCache {
    /// An empty cache that keeps at most `budget` bytes of encodings.
    pub fn new(budget: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
            bytes: 0,
            budget,
            model: None,
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_use.clear();
        self.bytes = 0;
    }

    /// Prompts cached, and the bytes they hold.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `prompt` is cached.
    pub fn contains(&self, prompt: &str) -> bool {
        self.entries.contains_key(prompt)
    }

    /// Ties the cache to a model id, emptying it if it held another model's encodings.
    pub fn bind(&mut self, model: u64) {
        if self.model != Some(model) {
            self.clear();
            self.model = Some(model);
        }
    }

    /// The prompts not cached yet, each once, in order.
    pub fn misses(&self, prompts: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in prompts {
            if !self.entries.contains_key(p) && !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// The cached prompts (each once, in order) whose entries lack SmartCLIP's part, with their
    /// tokenisations.
    pub fn lacking_smart(&self, prompts: &[String]) -> (Vec<String>, Vec<Tokenized>) {
        let (mut names, mut tokenized): (Vec<String>, Vec<Tokenized>) = (Vec::new(), Vec::new());
        for p in prompts {
            if let Some(e) = self.entries.get(p) {
                if e.smart.is_none() && !names.contains(p) {
                    names.push(p.clone());
                    tokenized.push(e.tokenized.clone());
                }
            }
        }
        (names, tokenized)
    }

    /// Adds SmartCLIP's part (row i of `smart` for `prompts[i]`) to cached entries.
    pub fn set_smart(
        &mut self,
        prompts: &[String],
        smart: &SmartPrompts,
    ) -> Result<(), ModelError> {
        for (i, p) in prompts.iter().enumerate() {
            if let Some(e) = self.entries.get_mut(p) {
                let part = (smart.logits.get(i)?, smart.texts.get(i)?);
                let bytes = tensor_bytes(&part.0) + tensor_bytes(&part.1);
                if let Some(old) = e.smart.replace(part) {
                    let freed = tensor_bytes(&old.0) + tensor_bytes(&old.1);
                    e.bytes -= freed;
                    self.bytes -= freed;
                }
                e.bytes += bytes;
                self.bytes += bytes;
            }
        }
        Ok(())
    }

    /// Remembers every prompt of a fresh encoding.
    pub fn insert(&mut self, prompts: &[String], enc: &EncodedPrompts) -> Result<(), ModelError> {
        for (i, p) in prompts.iter().enumerate() {
            let columns = match &enc.columns {
                Some(c) => Some((
                    c.tokenized[i].clone(),
                    c.word_starts[i].clone(),
                    c.normalized.get(i)?,
                )),
                None => None,
            };
            let smart = match &enc.smart {
                Some(s) => Some((s.logits.get(i)?, s.texts.get(i)?)),
                None => None,
            };
            let tokens = enc.tokens[i].clone();
            let pooled = enc.pooled[i].clone();
            let bytes = tensor_bytes(&tokens)
                + tensor_bytes(&pooled)
                + columns.as_ref().map_or(0, |c| tensor_bytes(&c.2))
                + smart
                    .as_ref()
                    .map_or(0, |s| tensor_bytes(&s.0) + tensor_bytes(&s.1));
            self.clock += 1;
            let entry = Entry {
                tokenized: enc.tokenized[i].clone(),
                tokens,
                pooled,
                columns,
                smart,
                bytes,
                used: self.clock,
            };
            self.bytes += bytes;
            self.by_use.insert(self.clock, p.clone());
            if let Some(old) = self.entries.insert(p.clone(), entry) {
                self.bytes -= old.bytes;
                self.by_use.remove(&old.used);
            }
        }
        Ok(())
    }

    /// Forgets the least recently used prompts until the entries fit the budget (called after
    /// the current request is served, so none of its prompts goes missing).
    pub fn trim(&mut self) {
        while self.bytes > self.budget && self.entries.len() > 1 {
            let Some((_, old)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&old) {
                self.bytes -= e.bytes;
            }
        }
    }

    /// The encodings of `prompts`, all of which must be cached; each counts as used now.
    pub fn assemble(&mut self, prompts: &[String]) -> Result<EncodedPrompts, ModelError> {
        for p in prompts {
            let entry = self.entries.get_mut(p).ok_or_else(|| {
                ModelError::Prompt(format!("internal: {p:?} is not in the text cache"))
            })?;
            self.clock += 1;
            self.by_use.remove(&entry.used);
            entry.used = self.clock;
            self.by_use.insert(self.clock, p.clone());
        }
        let entries: Vec<&Entry> = prompts.iter().filter_map(|p| self.entries.get(p)).collect();
        let columns = if entries.iter().all(|e| e.columns.is_some()) {
            let (mut tokenized, mut word_starts, mut rows) = (Vec::new(), Vec::new(), Vec::new());
            for (t, w, r) in entries.iter().filter_map(|e| e.columns.clone()) {
                tokenized.push(t);
                word_starts.push(w);
                rows.push(r);
            }
            Some(ScorerColumns {
                tokenized,
                word_starts,
                normalized: Tensor::stack(&rows, 0)?,
            })
        } else {
            None
        };
        let smart = if entries.iter().all(|e| e.smart.is_some()) {
            let (logits, texts): (Vec<Tensor>, Vec<Tensor>) =
                entries.iter().filter_map(|e| e.smart.clone()).unzip();
            Some(SmartPrompts {
                logits: Tensor::stack(&logits, 0)?,
                texts: Tensor::stack(&texts, 0)?,
            })
        } else {
            None
        };
        Ok(EncodedPrompts {
            tokenized: entries.iter().map(|e| e.tokenized.clone()).collect(),
            tokens: entries.iter().map(|e| e.tokens.clone()).collect(),
            pooled: entries.iter().map(|e| e.pooled.clone()).collect(),
            columns,
            smart,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LoadedModel;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn the_least_recently_used_prompts_are_evicted_never_the_ones_in_use() {
        let model = LoadedModel::embedded().unwrap();
        let kept = vec!["a red circle".to_string()];
        let one = model.encode_prompts(&kept).unwrap();
        let mut probe = TextCache::default();
        probe.bind(1);
        probe.insert(&kept, &one).unwrap();
        // Room for about ten prompts.
        let mut cache = TextCache::new(probe.bytes() * 10);
        model.encode_prompts_cached(&kept, &mut cache).unwrap();
        for i in 0..40 {
            let batch = vec![format!("a blue square {i}"), kept[0].clone()];
            let enc = model.encode_prompts_cached(&batch, &mut cache).unwrap();
            assert_eq!(enc.tokens.len(), 2);
            assert!(
                cache.bytes() <= probe.bytes() * 12,
                "{} bytes",
                cache.bytes()
            );
        }
        // The prompt asked for on every call survived; the oldest of the others did not.
        assert!(cache.contains(&kept[0]));
        assert!(!cache.contains("a blue square 0"));
        assert!(cache.contains("a blue square 39"));
        assert!(cache.len() <= 12, "{} prompts kept", cache.len());
        // What comes back equals a fresh pass.
        let b = model.encode_prompts_cached(&kept, &mut cache).unwrap();
        let fresh = model.encode_prompts(&kept).unwrap();
        assert!(max_diff(&b.tokens[0], &fresh.tokens[0]) < 1e-6);
        assert_eq!(one.tokenized[0], b.tokenized[0]);
        assert_eq!(
            b.columns.unwrap().normalized.dims(),
            fresh.columns.unwrap().normalized.dims()
        );
    }

    #[test]
    fn a_cache_of_another_model_is_emptied_before_use() {
        let mut model = LoadedModel::embedded().unwrap();
        let prompts = vec!["a red circle".to_string()];
        let mut cache = TextCache::default();
        let with_heads = model.encode_prompts_cached(&prompts, &mut cache).unwrap();
        assert!(with_heads.columns.is_some());
        model.take_scorers();
        let without = model.encode_prompts_cached(&prompts, &mut cache).unwrap();
        assert!(
            without.columns.is_none(),
            "stale scorer columns were served"
        );
    }

    #[test]
    fn smartclip_left_for_later_is_filled_in_as_an_unbroken_encoding_has_it() {
        let model = LoadedModel::embedded().unwrap();
        assert!(model.smartclip().is_some());
        let prompts: Vec<String> = ["a red circle", "a blue star", "a red circle"]
            .map(String::from)
            .into();
        let whole = model.encode_prompts(&prompts).unwrap();
        let mut cache = TextCache::default();
        let (quick, pending) = model
            .encode_prompts_cached_quick(&prompts, &mut cache)
            .unwrap();
        assert!(pending && quick.smart.is_none());
        let before = cache.bytes();
        let done = model.encode_prompts_cached(&prompts, &mut cache).unwrap();
        assert!(cache.bytes() > before, "SmartCLIP's part is not counted");
        let (a, b) = (whole.smart.unwrap(), done.smart.unwrap());
        assert!(max_diff(&a.logits, &b.logits) < 1e-5);
        assert!(max_diff(&a.texts, &b.texts) < 1e-5);
        // Once complete, a quick call has nothing left to do.
        let (again, pending) = model
            .encode_prompts_cached_quick(&prompts, &mut cache)
            .unwrap();
        assert!(!pending && again.smart.is_some());
        assert_eq!(cache.lacking_smart(&prompts).0.len(), 0);
    }
}
