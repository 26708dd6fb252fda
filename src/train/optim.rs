//! AdamW (decoupled weight decay, as candle-nn's) whose moments can be saved and restored, with
//! one fused update per variable instead of a dozen tensor operations.

use candle_core::{backprop::GradStore, DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use rayon::prelude::*;
use std::collections::HashMap;

/// The optimiser: named variables, their first and second moments, and the step count.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    /// Variables left as they are (`freeze`): no update, no decay, moments kept at zero.
    frozen: Vec<bool>,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
    /// Steps taken so far (bias correction uses it).
    pub steps: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

impl AdamW {
    /// Zero moments for every variable of `varmap` (sorted by name, so saved state lines up).
    pub fn new(varmap: &VarMap, lr: f64, weight_decay: f64) -> Result<Self> {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?;
        let mut vars: Vec<(String, Var)> =
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |v: &Var| vec![0f32; v.elem_count()];
        Ok(Self {
            frozen: vec![false; vars.len()],
            first: vars.iter().map(|(_, v)| zeros(v)).collect(),
            second: vars.iter().map(|(_, v)| zeros(v)).collect(),
            vars,
            steps: 0,
            lr,
            weight_decay,
        })
    }

    /// Leaves every variable whose name starts with one of `prefixes` untouched from now on;
    /// returns how many values that holds.
    pub fn freeze(&mut self, prefixes: &[&str]) -> usize {
        let mut held = 0;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            if prefixes.iter().any(|p| name.starts_with(p)) {
                self.frozen[i] = true;
                held += var.elem_count();
            }
        }
        held
    }

    /// Backpropagates `loss` and updates every variable that has a gradient.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        let lr = self.lr as f32;
        let decay = 1.0 - lr * self.weight_decay as f32;
        for (i, (_, var)) in self.vars.iter().enumerate() {
            if self.frozen[i] {
                continue;
            }
            let Some(g) = grads.get(var) else { continue };
            let g = g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let mut w = var.flatten_all()?.to_vec1::<f32>()?;
            let (m, v) = (&mut self.first[i], &mut self.second[i]);
            const CHUNK: usize = 1 << 14;
            w.par_chunks_mut(CHUNK)
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .zip(g.par_chunks(CHUNK))
                .for_each(|(((w, m), v), g)| {
                    for k in 0..w.len() {
                        m[k] = BETA1 * m[k] + (1.0 - BETA1) * g[k];
                        v[k] = BETA2 * v[k] + (1.0 - BETA2) * g[k] * g[k];
                        let step = (m[k] / c1) / ((v[k] / c2).sqrt() + EPS);
                        w[k] = w[k] * decay - lr * step;
                    }
                });
            var.set(&Tensor::from_vec(w, var.shape(), var.device())?)?;
        }
        Ok(())
    }

    /// The moments as tensors named `adam.m.<var>` and `adam.v.<var>`.
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (kind, data) in [("m", &self.first[i]), ("v", &self.second[i])] {
                let t = Tensor::from_slice(data, var.shape(), &Device::Cpu)?;
                out.push((format!("adam.{kind}.{name}"), t));
            }
        }
        Ok(out)
    }

    /// Restores moments saved by `state` (every variable's must be there).
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, steps: usize) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (kind, slot) in [("m", &mut self.first[i]), ("v", &mut self.second[i])] {
                let key = format!("adam.{kind}.{name}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint has no {key}")))?;
                if t.elem_count() != var.elem_count() {
                    return Err(candle_core::Error::Msg(format!(
                        "{key} has the wrong shape"
                    )));
                }
                *slot = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            }
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::{Init, Optimizer, ParamsAdamW, VarBuilder};

    fn vars() -> (VarMap, Tensor) {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let w = vb
            .get_with_hints(
                (3, 4),
                "w",
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            )
            .unwrap();
        (varmap, w)
    }

    #[test]
    fn matches_candle_adamw_and_resumes_exactly() {
        let (ours, w) = vars();
        let (theirs, _) = vars();
        theirs.data().lock().unwrap()["w"].set(&w).unwrap();
        let x = Tensor::new(&[[1f32, -2.0, 0.5, 3.0]], &Device::Cpu).unwrap();
        let loss = |m: &VarMap| {
            let w = m.data().lock().unwrap()["w"].as_tensor().clone();
            x.matmul(&w.t().unwrap())
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let mut a = AdamW::new(&ours, 0.01, 0.05).unwrap();
        let params = ParamsAdamW {
            lr: 0.01,
            weight_decay: 0.05,
            ..Default::default()
        };
        let mut b = candle_nn::AdamW::new(theirs.all_vars(), params).unwrap();
        for _ in 0..5 {
            a.backward_step(&loss(&ours)).unwrap();
            b.backward_step(&loss(&theirs)).unwrap();
        }
        let get = |m: &VarMap| {
            m.data().lock().unwrap()["w"]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        for (p, q) in get(&ours).iter().zip(get(&theirs)) {
            assert!((p - q).abs() < 1e-6, "{p} vs {q}");
        }
        // Saved and restored into a fresh optimiser, the next step is the same.
        let state: HashMap<String, Tensor> = a.state().unwrap().into_iter().collect();
        let (copy, _) = vars();
        copy.data().lock().unwrap()["w"]
            .set(&ours.data().lock().unwrap()["w"].as_tensor().clone())
            .unwrap();
        let mut c = AdamW::new(&copy, 0.01, 0.05).unwrap();
        c.restore(&state, a.steps).unwrap();
        a.backward_step(&loss(&ours)).unwrap();
        c.backward_step(&loss(&copy)).unwrap();
        assert_eq!(get(&ours), get(&copy));
    }
}
