//! Position embeddings resized to another patch grid, as `transformers`' CLIP does with
//! `interpolate_pos_encoding=True`: torch's bicubic interpolation (A = −0.75,
//! `align_corners=False`, edge indices clamped) over the grid, the CLS row kept.

use candle_core::{Result, Tensor};

/// Cubic convolution weights of torch's `upsample_bicubic2d` for fractional offset `t`.
fn weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// For each output index: the four source indices (clamped) and their weights.
fn taps(size_in: usize, size_out: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = size_in as f32 / size_out as f32;
    (0..size_out)
        .map(|o| {
            let src = (o as f32 + 0.5) * scale - 0.5;
            let base = src.floor();
            let w = weights(src - base);
            let idx =
                [-1i64, 0, 1, 2].map(|d| (base as i64 + d).clamp(0, size_in as i64 - 1) as usize);
            (idx, w)
        })
        .collect()
}

/// Resizes a (rows_in, cols_in, dim) row-major grid to (rows_out, cols_out, dim).
pub fn bicubic(
    grid: &[f32],
    (rows_in, cols_in): (usize, usize),
    (rows_out, cols_out): (usize, usize),
    dim: usize,
) -> Vec<f32> {
    let (tr, tc) = (taps(rows_in, rows_out), taps(cols_in, cols_out));
    // Along columns first, then rows (separable; the order does not change the result).
    let mut wide = vec![0f32; rows_in * cols_out * dim];
    for r in 0..rows_in {
        for (c, (idx, w)) in tc.iter().enumerate() {
            let out = &mut wide[(r * cols_out + c) * dim..][..dim];
            for (i, wi) in idx.iter().zip(w) {
                let src = &grid[(r * cols_in + i) * dim..][..dim];
                out.iter_mut().zip(src).for_each(|(o, s)| *o += wi * s);
            }
        }
    }
    let mut out = vec![0f32; rows_out * cols_out * dim];
    for (r, (idx, w)) in tr.iter().enumerate() {
        for c in 0..cols_out {
            let o = &mut out[(r * cols_out + c) * dim..][..dim];
            for (i, wi) in idx.iter().zip(w) {
                let src = &wide[(i * cols_out + c) * dim..][..dim];
                o.iter_mut().zip(src).for_each(|(o, s)| *o += wi * s);
            }
        }
    }
    out
}

/// A (1 + g², D) position table resized to (1 + side², D), the CLS row unchanged.
pub fn position_table(table: &Tensor, side: usize) -> Result<Tensor> {
    let (n, dim) = table.dims2()?;
    let g = ((n - 1) as f64).sqrt().round() as usize;
    if g * g + 1 != n {
        return Err(candle_core::Error::Msg(format!(
            "a position table of {n} rows is not 1 + a square grid"
        )));
    }
    if g == side {
        return Ok(table.clone());
    }
    let dtype = table.dtype();
    let flat = table
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let resized = bicubic(&flat[dim..], (g, g), (side, side), dim);
    let grid = Tensor::from_vec(resized, (side * side, dim), table.device())?;
    Tensor::cat(
        &[
            &table.narrow(0, 0, 1)?.to_dtype(candle_core::DType::F32)?,
            &grid,
        ],
        0,
    )?
    .to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_grid_stays_constant_and_the_same_size_is_the_identity() {
        let out = bicubic(&[2.5; 9], (3, 3), (7, 5), 1);
        assert!(out.iter().all(|v| (v - 2.5).abs() < 1e-5), "{out:?}");
        // Identity at the same size.
        let grid: Vec<f32> = (0..16).map(|v| v as f32).collect();
        assert_eq!(bicubic(&grid, (4, 4), (4, 4), 1), grid);
    }

    #[test]
    fn matches_torch_bicubic() {
        // torch.nn.functional.interpolate(x, size, mode="bicubic", align_corners=False) on
        // x = [[0, 1], [2, 3]] to 4×4 (first row), and on x = arange(9)^1.5 (3×3) to 5×7.
        let out = bicubic(&[0.0, 1.0, 2.0, 3.0], (2, 2), (4, 4), 1);
        for (a, b) in out[..4].iter().zip([-0.3164f32, 0.0156, 0.5625, 0.8945]) {
            assert!((a - b).abs() < 1e-4, "{out:?}");
        }
        let x: Vec<f32> = (0..9).map(|v| (v as f32).powf(1.5)).collect();
        let out = bicubic(&x, (3, 3), (5, 7), 1);
        let torch = [
            -0.58923f32,
            -0.42108,
            -0.19741,
            0.328,
            1.12791,
            1.83197,
            2.21236,
            1.15423,
            1.49885,
            2.03575,
            2.95854,
            4.08908,
            4.98951,
            5.49474,
            4.88961,
            5.49367,
            6.48908,
            8.0,
            9.62947,
            10.83233,
            11.52805,
            10.9958,
            11.76477,
            13.04526,
            14.9424,
            16.92997,
            18.36877,
            19.20765,
            15.18032,
            16.02841,
            17.44358,
            19.53021,
            21.7034,
            23.27009,
            24.1851,
        ];
        for (a, b) in out.iter().zip(torch) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
