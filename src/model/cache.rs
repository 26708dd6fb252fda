//! Text encodings kept per prompt across calls, so a prompt edit re-encodes only the prompt that
//! changed (the others come back from here).

use candle_core::Tensor;
use std::collections::{HashMap, VecDeque};

use super::{EncodedPrompts, ModelError, ScorerColumns, SmartPrompts, Tokenized};

/// Prompts remembered at most.
const CAPACITY: usize = 256;

/// One prompt's share of an `EncodedPrompts`.
#[derive(Debug, Clone)]
struct Entry {
    tokenized: Tokenized,
    tokens: Tensor,
    /// Scorer columns: tokens, word starts, normalised (columns, D).
    columns: Option<(Tokenized, Vec<usize>, Tensor)>,
    smart: Option<(Tensor, Tensor)>,
}

/// Prompt text → its encodings, oldest evicted first.
#[derive(Debug, Default)]
pub struct TextCache {
    entries: HashMap<String, Entry>,
    order: VecDeque<String>,
}

impl TextCache {
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
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

    /// Remembers every prompt of a fresh encoding.
    pub fn insert(&mut self, prompts: &[String], enc: &EncodedPrompts) -> Result<(), ModelError> {
        for (i, p) in prompts.iter().enumerate() {
            let entry = Entry {
                tokenized: enc.tokenized[i].clone(),
                tokens: enc.tokens[i].clone(),
                columns: match &enc.columns {
                    Some(c) => Some((
                        c.tokenized[i].clone(),
                        c.word_starts[i].clone(),
                        c.normalized.get(i)?,
                    )),
                    None => None,
                },
                smart: match &enc.smart {
                    Some(s) => Some((s.logits.get(i)?, s.texts.get(i)?)),
                    None => None,
                },
            };
            if self.entries.insert(p.clone(), entry).is_none() {
                self.order.push_back(p.clone());
            }
        }
        Ok(())
    }

    /// Forgets the oldest prompts beyond the capacity (after the current request is served,
    /// so none of its prompts goes missing).
    pub fn trim(&mut self) {
        while self.order.len() > CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// The encodings of `prompts`, all of which must be cached.
    pub fn assemble(&self, prompts: &[String]) -> Result<EncodedPrompts, ModelError> {
        let entries = prompts
            .iter()
            .map(|p| {
                self.entries.get(p).ok_or_else(|| {
                    ModelError::Prompt(format!("internal: {p:?} is not in the text cache"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
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
            columns,
            smart,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadedModel;

    #[test]
    fn old_prompts_are_evicted_but_never_the_ones_asked_for() {
        let model = LoadedModel::embedded().unwrap();
        let first = vec!["a red circle".to_string()];
        let a = model.encode_prompts(&first).unwrap();
        for i in 0..CAPACITY + 10 {
            let batch = vec![format!("a blue square {i}"), first[0].clone()];
            let enc = model.encode_prompts(&batch).unwrap();
            assert_eq!(enc.tokens.len(), 2);
        }
        // Asked for on every call, the first prompt is still served, and equals a fresh pass.
        let b = model.encode_prompts(&first).unwrap();
        let fresh = model.encode_prompts_uncached(&first).unwrap();
        let diff = (&b.tokens[0] - &fresh.tokens[0])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6);
        assert_eq!(a.tokenized[0], b.tokenized[0]);
        assert_eq!(
            b.columns.unwrap().normalized.dims(),
            fresh.columns.unwrap().normalized.dims()
        );
    }
}
