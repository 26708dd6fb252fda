//! Dense cosine similarity maps: every image token against every text token, as plain data.

pub mod columns;
pub mod scorer;

pub use columns::{ScorerColumns, ScorerScore};

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// A row-major matrix of `f32`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
    /// Row 0 is the CLS token (CLIP); SigLIP's maps have patch rows only.
    #[serde(default = "yes")]
    pub cls_row: bool,
}

fn yes() -> bool {
    true
}

impl Matrix {
    /// The first patch row: 1 after a CLS row, else 0.
    pub fn first_patch_row(&self) -> usize {
        usize::from(self.cls_row)
    }

    /// The number of patch rows.
    pub fn patch_rows(&self) -> usize {
        self.rows - self.first_patch_row().min(self.rows)
    }

    pub fn get(&self, row: usize, col: usize) -> f32 {
        self.data[row * self.cols + col]
    }

    /// One column (e.g. a token's values over all image rows).
    pub fn column(&self, col: usize) -> Vec<f32> {
        (0..self.rows).map(|r| self.get(r, col)).collect()
    }

    /// Rows as nested vectors (for JSON).
    pub fn to_rows(&self) -> Vec<Vec<f32>> {
        self.data
            .chunks(self.cols.max(1))
            .map(<[f32]>::to_vec)
            .collect()
    }

    /// Smallest and largest value.
    pub fn range(&self) -> (f32, f32) {
        self.data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }
}

/// The DCSM of L2-normalised image rows (R × D) and text rows (T × D): R × T cosines.
pub fn cosine_map(image_normalized: &Tensor, text_normalized: &Tensor) -> Result<Matrix> {
    let map = image_normalized.matmul(&text_normalized.t()?)?;
    let (rows, cols) = map.dims2()?;
    Ok(Matrix {
        rows,
        cols,
        data: map.flatten_all()?.to_vec1::<f32>()?,
        cls_row: true,
    })
}

/// The patch map of one token: `rows × cols` values of column `token`, CLS row excluded.
pub fn patch_map(map: &Matrix, token: usize) -> Vec<f32> {
    (map.first_patch_row()..map.rows)
        .map(|r| map.get(r, token))
        .collect()
}

/// A numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn cosines_of_normalised_rows() {
        let img = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [0.6, 0.8]], &Device::Cpu).unwrap();
        let txt = Tensor::new(&[[1f32, 0.0], [0.6, 0.8]], &Device::Cpu).unwrap();
        let m = cosine_map(&img, &txt).unwrap();
        assert_eq!((m.rows, m.cols), (3, 2));
        assert!((m.get(2, 1) - 1.0).abs() < 1e-6);
        assert!((m.get(1, 1) - 0.8).abs() < 1e-6);
        assert_eq!(patch_map(&m, 0), vec![0.0, 0.6]);
        assert_eq!(m.to_rows()[2], vec![0.6, 1.0]);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6);
    }
}
