//! Text encodings kept per prompt across calls, so a prompt edit re-encodes only the prompt that
//! changed. The caller owns the cache (the worker does), as candle-transformers' llama.rs
//! callers own its `Cache`: the engine itself holds no state between calls.

use candle_core::Tensor;
use std::collections::{BTreeMap, HashMap};

use super::types::{tensor_bytes, EncodedPrompts};
use crate::clip::TextKv;
use crate::dcsm::ScorerColumns;
use crate::error::ModelError;
use crate::io::tokenizer::Tokenized;
use crate::smartclip::SmartPrompts;

/// Bytes of encodings a default cache keeps (about 600 prompts of a ViT-B/16, 4,000 of the
/// default model).
pub const DEFAULT_BUDGET: usize = 128 << 20;

/// A part of a prompt's encoding that a quick pass leaves for later
/// (`LoadedModel::encode_prompts_cached_quick`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The DCSM scorers' columns (the prompt padded to the scorer's width).
    Columns,
    /// SmartCLIP's mask logits and text embedding (the whole context).
    Smart,
}

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
    /// The quick pass's keys and values, kept until the scorer's columns are made from them.
    kept: Option<TextKv>,
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

    /// The cached prompts (each once, in order) whose entries lack `part`, with their
    /// tokenisations.
    pub fn lacking(&self, prompts: &[String], part: Part) -> (Vec<String>, Vec<Tokenized>) {
        let (mut names, mut tokenized): (Vec<String>, Vec<Tokenized>) = (Vec::new(), Vec::new());
        for p in prompts {
            if let Some(e) = self.entries.get(p) {
                let missing = match part {
                    Part::Columns => e.columns.is_none(),
                    Part::Smart => e.smart.is_none(),
                };
                if missing && !names.contains(p) {
                    names.push(p.clone());
                    tokenized.push(e.tokenized.clone());
                }
            }
        }
        (names, tokenized)
    }

    /// Adds the scorers' columns (row i of `columns` for `prompts[i]`) to cached entries.
    pub fn set_columns(
        &mut self,
        prompts: &[String],
        columns: &ScorerColumns,
    ) -> Result<(), ModelError> {
        for (i, p) in prompts.iter().enumerate() {
            let part = (
                columns.tokenized[i].clone(),
                columns.word_starts[i].clone(),
                columns.normalized.get(i)?,
            );
            self.replace(p, |e| {
                let bytes = tensor_bytes(&part.2);
                let freed = e.columns.replace(part).map_or(0, |o| tensor_bytes(&o.2))
                    + e.kept.take().map_or(0, |k| k.bytes());
                (freed, bytes)
            });
        }
        Ok(())
    }

    /// Adds SmartCLIP's part (row i of `smart` for `prompts[i]`) to cached entries.
    pub fn set_smart(
        &mut self,
        prompts: &[String],
        smart: &SmartPrompts,
    ) -> Result<(), ModelError> {
        for (i, p) in prompts.iter().enumerate() {
            let part = (smart.logits.get(i)?, smart.texts.get(i)?);
            self.replace(p, |e| {
                let bytes = tensor_bytes(&part.0) + tensor_bytes(&part.1);
                let freed = e
                    .smart
                    .replace(part)
                    .map_or(0, |o| tensor_bytes(&o.0) + tensor_bytes(&o.1));
                (freed, bytes)
            });
        }
        Ok(())
    }

    /// Keeps a quick pass's keys and values (`kept[i]` for `prompts[i]`; none when `kept` is
    /// empty) until the scorer's columns are made from them.
    pub fn set_kept(&mut self, prompts: &[String], kept: Vec<TextKv>) {
        for (p, kv) in prompts.iter().zip(kept) {
            self.replace(p, |e| {
                let bytes = kv.bytes();
                (e.kept.replace(kv).map_or(0, |o| o.bytes()), bytes)
            });
        }
    }

    /// A cached prompt's own projected tokens and the keys and values its quick pass kept.
    pub fn kept(&self, prompt: &str) -> Option<(&Tensor, &TextKv)> {
        let e = self.entries.get(prompt)?;
        Some((&e.tokens, e.kept.as_ref()?))
    }

    /// Sets a part of `prompt`'s entry, if cached: `set` returns the bytes it freed and added.
    fn replace(&mut self, prompt: &str, set: impl FnOnce(&mut Entry) -> (usize, usize)) {
        if let Some(e) = self.entries.get_mut(prompt) {
            let (freed, added) = set(e);
            e.bytes = e.bytes + added - freed;
            self.bytes = self.bytes + added - freed;
        }
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
                kept: None,
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
#[path = "cache_tests.rs"]
mod tests;
