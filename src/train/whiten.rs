//! A data-driven start for the patch embedding of a vision tower trained from random weights:
//! the principal components of the training scenes' patches, whitened, so that edges start as
//! loud as a patch's mean colour instead of far below it.
//!
//! A random patch embedding reads mostly a patch's mean colour (the few directions that hold
//! nearly all of the pixels' variance), and a tower trained from it learnt colours and places in
//! a few hundred steps and shapes only after about 900 (model card: "From scratch at 224 px with
//! dropping"). Whitening the first layer is what fast CIFAR-10 trainers do for the same reason.
//! The random start's token scale is kept, so only the spectrum changes.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use super::data;
use crate::engine::{ClipConfig, PreprocessConfig};
use crate::world::{self, Split};

/// Scenes whose patches estimate the covariance (196 patches each at 224 px).
const SCENES: u64 = 192;
/// Salt of the scene stream the patches come from.
const SALT: u64 = 0x5748_4954_454E;
/// Components brought to unit variance; past them each keeps λ/ε of its variance (ε the
/// eigenvalue here), so the weak high-frequency ones, nearer the pixel noise, are not amplified.
/// On 224-px training patches the eigenvalues run 1148 (the mean brightness, 88 % of a random
/// start's token), 42.7, 20.6, … 0.155 at 32 and 0.0055 at 256.
const WHITE: usize = 32;
const PATCH_WEIGHT: &str = "vision_model.embeddings.patch_embedding.weight";
const POSITIONS: &str = "vision_model.embeddings.position_embedding.weight";

/// Every `p`×`p` patch of scenes `0..n` of the salted training stream, as the model's patch
/// convolution reads them (`clip::patches`): (n · grid², 3 · p · p).
fn training_patches(seed: u64, n: u64, side: usize, p: usize) -> anyhow::Result<Tensor> {
    let pre = PreprocessConfig::openai(side);
    let mut pixels = Vec::with_capacity(n as usize * 3 * side * side);
    for i in 0..n {
        let scene = world::scene(seed ^ SALT, Split::Train, i);
        pixels.extend(data::scene_pixels(&scene, &pre));
    }
    let x = Tensor::from_vec(pixels, (n as usize, 3, side, side), &Device::Cpu)?;
    Ok(crate::clip::patches(&x, p)?)
}

/// The rows' mean (d) and covariance (d × d, row-major), in f64.
fn moments(x: &Tensor) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let n = x.dim(0)?;
    anyhow::ensure!(n > 1, "too few patches to whiten");
    let mean = x.mean(0)?;
    let centred = x.broadcast_sub(&mean)?;
    let cov = (centred.t()?.matmul(&centred)? / (n - 1) as f64)?;
    let to64 = |t: Tensor| -> anyhow::Result<Vec<f64>> {
        Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
    };
    Ok((to64(mean)?, to64(cov)?))
}

/// Eigenvalues (descending) and unit eigenvectors (one per row, in the same order) of the
/// symmetric `n`×`n` matrix `a` (row-major), by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    assert_eq!(a.len(), n * n, "not an n × n matrix");
    // Rows of `vt` gather the rotations: at the end they are the eigenvectors.
    let mut vt = vec![0.0; n * n];
    for i in 0..n {
        vt[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|v| v * v).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + theta.hypot(1.0));
                let c = 1.0 / t.hypot(1.0);
                let s = t * c;
                // Columns p and q (A·J), then rows p and q (Jᵀ·A).
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                rotate_rows(&mut a, n, p, q, c, s);
                rotate_rows(&mut vt, n, p, q, c, s);
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let vectors = order
        .iter()
        .map(|&i| vt[i * n..(i + 1) * n].to_vec())
        .collect();
    (values, vectors)
}

/// Rows p < q of `m` (n wide) become c·p − s·q and s·p + c·q.
fn rotate_rows(m: &mut [f64], n: usize, p: usize, q: usize, c: f64, s: f64) {
    let (head, tail) = m.split_at_mut(q * n);
    let (rp, rq) = (&mut head[p * n..(p + 1) * n], &mut tail[..n]);
    for (x, y) in rp.iter_mut().zip(rq.iter_mut()) {
        let (a, b) = (*x, *y);
        *x = c * a - s * b;
        *y = s * a + c * b;
    }
}

/// What `whiten_patches` found, for the log.
#[derive(Debug, Clone, Copy)]
pub struct Whitened {
    pub patches: usize,
    /// The largest eigenvalue, and the regulariser ε (the eigenvalue at `WHITE`).
    pub largest: f64,
    pub cutoff: f64,
    /// Mean squared norm of the random start's patch tokens, which the whitened ones keep.
    pub token_norm2: f64,
}

/// Replaces the random patch embedding in `varmap` by the top `hidden` principal components of
/// training patches, each divided by √(λ + ε) with ε the eigenvalue at `WHITE`, all scaled so
/// that tokens keep the random start's mean squared norm; the patches' mean is taken out through
/// the position table (every patch row), so each patch token starts centred.
pub fn whiten_patches(varmap: &VarMap, config: &ClipConfig, seed: u64) -> anyhow::Result<Whitened> {
    let v = &config.vision;
    let (p, h, side) = (v.patch_size, v.hidden_size, v.image_size);
    let d = v.num_channels * p * p;
    anyhow::ensure!(v.num_channels == 3, "whitening reads RGB patches");
    anyhow::ensure!(
        h < d,
        "whitening needs fewer hidden units ({h}) than patch values ({d})"
    );
    let patches = training_patches(seed, SCENES, side, p)?;
    let (mean, cov) = moments(&patches)?;
    let (values, vectors) = symmetric_eigen(cov, d);
    let cutoff = values[WHITE.min(h)].max(1e-12);
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("variable map poisoned"))?;
    let get = |name: &str| {
        vars.get(name)
            .ok_or_else(|| anyhow::anyhow!("the model has no {name}"))
    };
    let (weight, positions) = (get(PATCH_WEIGHT)?, get(POSITIONS)?);
    // The random start's mean squared token norm, measured on the same patches.
    let token_norm2 = f64::from(
        (patches
            .matmul(&weight.as_tensor().reshape((h, d))?.t()?)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()?)
            / patches.dim(0)? as f32,
    );
    let dot = |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| x * y).sum() };
    // The whitened rows give E‖W (x − μ)‖² = Σ λ/(λ + ε) before the common scale.
    let whitened_norm2: f64 = values[..h].iter().map(|l| l / (l + cutoff)).sum();
    let common = (token_norm2 / whitened_norm2).sqrt();
    let rows: Vec<Vec<f64>> = (0..h)
        .map(|k| {
            let gain = common / (values[k].max(0.0) + cutoff).sqrt();
            vectors[k].iter().map(|x| x * gain).collect()
        })
        .collect();
    let shift: Vec<f32> = rows.iter().map(|w| -dot(w, &mean) as f32).collect();
    let flat: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
    let new_weight = Tensor::from_vec(flat, weight.as_tensor().dims(), &Device::Cpu)?;
    let table = positions.as_tensor();
    let n = table.dim(0)?;
    let shift = Tensor::from_vec(shift, (1, h), &Device::Cpu)?;
    let moved = Tensor::cat(
        &[
            table.narrow(0, 0, 1)?,
            table.narrow(0, 1, n - 1)?.broadcast_add(&shift)?,
        ],
        0,
    )?;
    weight.set(&new_weight.to_dtype(weight.dtype())?)?;
    positions.set(&moved.to_dtype(positions.dtype())?)?;
    Ok(Whitened {
        patches: patches.dim(0)?,
        largest: values[0],
        cutoff,
        token_norm2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_the_eigenpairs_of_a_known_matrix() {
        // A = Qᵀ diag(λ) Q for a rotation Q built from three Givens turns.
        let n = 4;
        let mut q = vec![0.0; 16];
        for i in 0..4 {
            q[i * 4 + i] = 1.0;
        }
        rotate_rows(&mut q, n, 0, 2, 0.6, 0.8);
        rotate_rows(&mut q, n, 1, 3, 0.28, 0.96);
        rotate_rows(&mut q, n, 0, 1, 0.28, -0.96);
        let lambda = [5.0, 2.0, -1.0, 0.5];
        let mut a = vec![0.0; 16];
        for i in 0..4 {
            for j in 0..4 {
                a[i * 4 + j] = (0..4)
                    .map(|k| q[k * 4 + i] * lambda[k] * q[k * 4 + j])
                    .sum();
            }
        }
        let (values, vectors) = symmetric_eigen(a.clone(), n);
        for (v, w) in values.iter().zip([5.0, 2.0, 0.5, -1.0]) {
            assert!((v - w).abs() < 1e-10, "{values:?}");
        }
        for (vec, l) in vectors.iter().zip(&values) {
            let norm: f64 = vec.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-10);
            for i in 0..4 {
                let av: f64 = (0..4).map(|j| a[i * 4 + j] * vec[j]).sum();
                assert!((av - l * vec[i]).abs() < 1e-10, "A v ≠ λ v");
            }
        }
    }

    #[test]
    fn whitened_patches_are_decorrelated_and_centred_at_the_random_starts_scale() {
        let mut config = crate::train::clip::default_config();
        config.vision.image_size = 32;
        config.vision.patch_size = 8;
        config.vision.hidden_size = 32;
        config.vision.num_attention_heads = 1;
        config.vision.intermediate_size = 64;
        let varmap = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        crate::clip::Clip::new(&config, true, vb).unwrap();
        let table = |v: &VarMap| -> Vec<Vec<f32>> {
            v.data().lock().unwrap()[POSITIONS]
                .as_tensor()
                .to_vec2()
                .unwrap()
        };
        let before = table(&varmap);
        let w = whiten_patches(&varmap, &config, 3).unwrap();
        let after = table(&varmap);
        assert!(w.largest > 100.0 * w.cutoff, "{w:?}");
        // The same patches through the new weight: components uncorrelated, the spread the random
        // start's mean squared norm.
        let weight = varmap.data().lock().unwrap()[PATCH_WEIGHT]
            .as_tensor()
            .reshape((32, 192))
            .unwrap();
        let x = training_patches(3, SCENES, 32, 8).unwrap();
        let y = x.matmul(&weight.t().unwrap()).unwrap();
        let (mean, cov) = moments(&y).unwrap();
        let diag: Vec<f64> = (0..32).map(|i| cov[i * 32 + i]).collect();
        let worst_off = (0..32)
            .flat_map(|i| (0..32).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| cov[i * 32 + j].abs() / (diag[i] * diag[j]).sqrt())
            .fold(0.0f64, f64::max);
        assert!(worst_off < 1e-3, "correlation {worst_off}");
        let spread = diag.iter().sum::<f64>();
        assert!(
            (spread / w.token_norm2 - 1.0).abs() < 1e-3,
            "{spread} vs {w:?}"
        );
        // The class row is untouched; every patch row moved by −(mean of W x).
        assert_eq!(before[0], after[0]);
        let size = mean.iter().map(|m| m.abs()).fold(0.0, f64::max);
        assert!(
            size > 0.05,
            "the patches' mean is not worth taking out here: {size}"
        );
        for (b, a) in before[1..].iter().zip(&after[1..]) {
            for ((m, b), a) in mean.iter().zip(b).zip(a) {
                assert!(
                    (m + f64::from(a - b)).abs() < 1e-3 * size,
                    "{m} + {a} − {b}"
                );
            }
        }
    }
}
