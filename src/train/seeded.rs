//! Random initial weights drawn from a seeded generator, so that two from-scratch runs of one
//! command start from the same weights.
//!
//! candle's `VarMap` draws a new variable's `Init` from the CPU's unseeded generator (and
//! `Device::Cpu` cannot be seeded), so `train-clip --seed` used to fix the scenes, captions and
//! dropping but not the start. This backend answers a `VarBuilder` as `VarMap` does (same
//! distributions, same names, variables kept in the same map) with draws from a ChaCha stream of
//! the seed and the variable's name, so the start does not depend on the order the variables are
//! asked for in (a tower builds its layers in parallel).

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Salt of the initial weights' stream, apart from the scene streams of the same seed.
const SALT: u64 = 0x1417_5eed_0000_0001;

/// A `VarBuilder` whose new variables land in `varmap`, each drawn from a stream fixed by `seed`
/// and its name.
pub fn var_builder(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend = Seeded {
        varmap: varmap.clone(),
        seed: seed ^ SALT,
    };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}

/// `varmap` shares its variables with the caller's map (a `VarMap` clone is a handle).
struct Seeded {
    varmap: VarMap,
    seed: u64,
}

fn poisoned<T>(_: T) -> candle_core::Error {
    candle_core::Error::Msg("a thread panicked while it held the variable map".into())
}

impl Seeded {
    /// The values of `init` for variable `name` (in f64, as candle draws them); `None` for
    /// constants.
    fn draw(&self, name: &str, init: Init, shape: &Shape) -> Option<Vec<f64>> {
        let n = shape.elem_count();
        let (normal, a, b) = match init {
            Init::Const(_) => return None,
            Init::Uniform { lo, up } => (false, lo, up),
            Init::Randn { mean, stdev } => (true, mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => (false, -(3f64.sqrt()) * std, 3f64.sqrt() * std),
                    NormalOrUniform::Normal => (true, 0.0, std),
                }
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(name));
        let values = (0..n)
            .map(|_| {
                if normal {
                    a + b * standard_normal(&mut rng)
                } else if b > a {
                    rng.random_range(a..b)
                } else {
                    a
                }
            })
            .collect();
        Some(values)
    }
}

/// FNV-1a of a name: a hash that stays the same across Rust releases, unlike std's.
fn fnv1a(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One standard normal draw (Box-Muller from two uniforms; the pair's second value is not kept).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

impl SimpleBackend for Seeded {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        if self.contains_tensor(name) {
            return self.varmap.get(shape, name, init, dtype, device);
        }
        let tensor = match self.draw(name, init, &shape) {
            None => init.var(shape, dtype, device)?.as_tensor().clone(),
            Some(values) => Tensor::from_vec(values, shape, device)?.to_dtype(dtype)?,
        };
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        self.varmap
            .data()
            .lock()
            .map_err(poisoned)?
            .insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: a seeded start makes variables, it has none to look up")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .is_ok_and(|data| data.contains_key(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(seed: u64, embedding_first: bool) -> Vec<(String, Vec<f32>)> {
        let varmap = VarMap::new();
        let vb = var_builder(&varmap, seed, DType::F32, &Device::Cpu);
        if embedding_first {
            candle_nn::embedding(100, 16, vb.pp("b")).unwrap();
        }
        candle_nn::linear(64, 32, vb.pp("a")).unwrap();
        if !embedding_first {
            candle_nn::embedding(100, 16, vb.pp("b")).unwrap();
        }
        let mut vars: Vec<_> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    #[test]
    fn one_seed_one_start_in_any_order_and_the_same_distributions() {
        let (a, b, c) = (start(7, false), start(7, true), start(8, false));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // candle_nn::linear: Kaiming-normal weights and a bias uniform within ±1/sqrt(64);
        // candle_nn::embedding: N(0, 1).
        let get = |k: &str| &a.iter().find(|(n, _)| n == k).unwrap().1;
        let bias = get("a.bias");
        assert!(bias.iter().all(|x| x.abs() <= 0.125));
        assert!(bias.iter().any(|x| x.abs() > 0.06));
        let emb = get("b.weight");
        let mean = emb.iter().sum::<f32>() / emb.len() as f32;
        let var = emb.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / emb.len() as f32;
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.1, "{mean} {var}");
        let w = get("a.weight");
        let var_w = w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let reference = candle_nn::linear(64, 32, vb.pp("a")).unwrap();
        let r: Vec<f32> = reference.weight().flatten_all().unwrap().to_vec1().unwrap();
        let var_r = r.iter().map(|x| x * x).sum::<f32>() / r.len() as f32;
        assert!(
            (var_w / var_r - 1.0).abs() < 0.2,
            "{var_w} vs candle's {var_r}"
        );
    }
}
