//! Scoring: every prompt's DCSM, pooled CLIP cosine and probability, DCSM scorer verdicts
//! and SmartCLIP score against one encoded image.

use super::types::{EncodedImage, EncodedPrompts, PromptScore};
use super::{LoadedModel, ScoreKind};
use crate::clip;
use crate::dcsm;
use crate::error::ModelError;
use crate::smartclip::{self, SmartScore};

impl LoadedModel {
    /// SmartCLIP's verdicts on the image, one per prompt; `None` without a mask network or
    /// when the prompts were encoded without SmartCLIP's part (`encode_prompts_cached_quick`).
    pub fn smartclip_scores(
        &self,
        image: &EncodedImage,
        prompts: &EncodedPrompts,
    ) -> Result<Option<Vec<SmartScore>>, ModelError> {
        match (&self.smartclip, &prompts.smart) {
            (Some(net), Some(smart)) => {
                let cls = image.tokens.narrow(0, 0, 1)?;
                Ok(Some(smartclip::scores(net, &cls, smart)?))
            }
            _ => Ok(None),
        }
    }

    /// DCSMs, pooled cosines and softmax probabilities of the prompts against the image.
    pub fn score(
        &self,
        image: &EncodedImage,
        prompts: &EncodedPrompts,
    ) -> Result<Vec<PromptScore>, ModelError> {
        let scale = self.logit_scale_exp()?;
        let kind = self.family().score_kind();
        let image_pooled = clip::l2_normalize(&image.pooled)?;
        let mut out = Vec::with_capacity(prompts.tokens.len());
        for ((tok, t), pooled) in prompts
            .tokenized
            .iter()
            .zip(&prompts.tokens)
            .zip(&prompts.pooled)
        {
            let text_n = clip::l2_normalize(t)?;
            let mut map = dcsm::cosine_map(&image.normalized, &text_n)?;
            map.cls_row = image.cls_row;
            let clip_cosine = if image.cls_row {
                // CLIP: the CLS row against the EOS column.
                map.get(0, tok.eos_index())
            } else {
                let text_pooled = clip::l2_normalize(&pooled.unsqueeze(0)?)?;
                image_pooled
                    .matmul(&text_pooled.t()?)?
                    .flatten_all()?
                    .to_vec1::<f32>()?[0]
            };
            out.push(PromptScore {
                tokenized: tok.clone(),
                dcsm: map,
                clip_cosine,
                clip_prob: 0.0,
                dcsm_scores: Vec::new(),
                functional: Vec::new(),
                dcsm_text: None,
                smartclip: None,
            });
        }
        if let Some(verdicts) = self.smartclip_scores(image, prompts)? {
            for (s, v) in out.iter_mut().zip(verdicts) {
                s.smartclip = Some(v);
            }
        }
        if let Some(columns) = &prompts.columns {
            let (scores, functional) =
                dcsm::columns::verdicts(&self.scorers, &image.normalized, columns)?;
            for (((s, sc), f), t) in out
                .iter_mut()
                .zip(scores)
                .zip(functional)
                .zip(&columns.tokenized)
            {
                s.dcsm_scores = sc;
                s.functional = f;
                s.dcsm_text = (t.text != s.tokenized.text).then(|| t.text.clone());
            }
        }
        let bias = self.logit_bias()?;
        let logits: Vec<f32> = out.iter().map(|s| s.clip_cosine * scale + bias).collect();
        let probs = match kind {
            ScoreKind::Softmax => dcsm::softmax(&logits),
            ScoreKind::Sigmoid => logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect(),
        };
        for (s, p) in out.iter_mut().zip(probs) {
            s.clip_prob = p;
        }
        Ok(out)
    }
}
