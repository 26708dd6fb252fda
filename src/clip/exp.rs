//! A vectorisable f32 exp (Cephes' `expf`) and the passes over slices built on it: QuickGELU and
//! its gradient, and softmax rows, each compiled for the widest SIMD the CPU has (pulp, at run
//! time).
//!
//! `f32::exp` is a call into libm per value, so the loops around it stay scalar: on B/16 that
//! was 6-7 % of an image encode and of SmartCLIP's mask pass (`perf`, AMD EPYC 25/17). The
//! polynomial below is plain arithmetic, so each loop vectorises; its error is within 2 ulp of
//! the true value over the range that does not round to 0 or overflow (tested).

use pulp::{Arch, Simd, WithSimd};

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two (Cephes): `C1` has few enough bits that `n · C1` is exact.
const C1: f32 = 0.693_359_4;
const C2: f32 = -2.121_944_4e-4;
/// Below this, exp(x) is under f32's smallest normal number and is returned as 0.
const LOW: f32 = -87.336_55;
/// Above this, 2^n would reach f32's largest exponent; exp(88) = 1.65e38.
const HIGH: f32 = 88.0;
/// Cephes' minimax polynomial for (exp(r) − 1 − r) / r² on |r| ≤ ln 2 / 2.
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_2e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    0.166_666_65,
    0.5,
];

/// e^x, within 2 ulp where the result is a normal f32; 0 below `LOW`, NaN for NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let c = x.clamp(LOW, HIGH);
    let n = (c * LOG2E + 0.5).floor();
    let r = c - n * C1 - n * C2;
    let p =
        (((((P[0] * r + P[1]) * r + P[2]) * r + P[3]) * r + P[4]) * r + P[5]) * (r * r) + r + 1.0;
    // 2^n from n + 127 in [1, 254]: adding 2^23 puts that integer in the low mantissa bits,
    // and the shift moves it into the exponent (the bits of 2^23 itself shift out). An `as i32`
    // conversion would saturate lane by lane and keep the loop from vectorising.
    let biased = (n + 127.0 + 8_388_608.0).to_bits();
    let scaled = p * f32::from_bits(biased << 23);
    if x < LOW {
        0.0
    } else {
        scaled
    }
}

/// `out[i] = x·σ(1.702·x)` for `x = src[i]`.
pub(crate) fn quick_gelu(src: &[f32], out: &mut [f32]) {
    Arch::new().dispatch(Gelu { src, out });
}

/// `out[i] = g·(s + 1.702·x·s·(1 − s))` with `s = σ(1.702·x)`: QuickGELU's gradient times `g`.
pub(crate) fn quick_gelu_grad(x: &[f32], g: &[f32], out: &mut [f32]) {
    Arch::new().dispatch(GeluGrad { x, g, out });
}

/// Softmax of `src` (one row) into `out`.
pub(crate) fn softmax_row(src: &[f32], out: &mut [f32]) {
    Arch::new().dispatch(SoftmaxRow { src, out });
}

struct Gelu<'a> {
    src: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for Gelu<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for (o, &x) in self.out.iter_mut().zip(self.src) {
            *o = x / (1.0 + exp(-1.702 * x));
        }
    }
}

struct GeluGrad<'a> {
    x: &'a [f32],
    g: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for GeluGrad<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for ((o, &x), &g) in self.out.iter_mut().zip(self.x).zip(self.g) {
            let s = 1.0 / (1.0 + exp(-1.702 * x));
            *o = g * (s + 1.702 * x * s * (1.0 - s));
        }
    }
}

struct SoftmaxRow<'a> {
    src: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for SoftmaxRow<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let max = lanes(
            self.src,
            f32::NEG_INFINITY,
            |a, x| if x > a { x } else { a },
        )
        .into_iter()
        .fold(f32::NEG_INFINITY, f32::max);
        for (o, &v) in self.out.iter_mut().zip(self.src) {
            *o = exp(v - max);
        }
        let sum: f32 = lanes(self.out, 0.0, |a, x| a + x).into_iter().sum();
        let inv = 1.0 / sum;
        self.out.iter_mut().for_each(|v| *v *= inv);
    }
}

/// A reduction of `xs` into 16 lanes (the tail folded into the first ones), so that the loop
/// vectorises: a plain fold over f32 has one order and stays scalar.
#[inline(always)]
fn lanes(xs: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> [f32; 16] {
    let mut acc = [init; 16];
    let chunks = xs.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = f(*a, x);
        }
    }
    for (a, &x) in acc.iter_mut().zip(rest) {
        *a = f(*a, x);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two positive normal f32s.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm_over_its_range() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (exp(x), (x as f64).exp() as f32);
            worst = worst.max(ulps(ours, libm));
            x += 0.000_731;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.0).is_finite() && exp(1000.0).is_finite());
    }

    #[test]
    fn the_passes_match_their_libm_forms() {
        let xs: Vec<f32> = (0..1003).map(|i| (i as f32 - 500.0) * 0.037).collect();
        let g: Vec<f32> = xs.iter().map(|x| 0.5 - x.sin()).collect();
        let mut out = vec![0.0; xs.len()];
        quick_gelu(&xs, &mut out);
        for (&x, &o) in xs.iter().zip(&out) {
            assert!((o - x / (1.0 + (-1.702 * x).exp())).abs() <= 1e-6 * (1.0 + x.abs()));
        }
        quick_gelu_grad(&xs, &g, &mut out);
        for ((&x, &g), &o) in xs.iter().zip(&g).zip(&out) {
            let s = 1.0 / (1.0 + (-1.702 * x).exp());
            let want = g * (s + 1.702 * x * s * (1.0 - s));
            assert!(
                (o - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{x}: {o} vs {want}"
            );
        }
        let row: Vec<f32> = xs
            .iter()
            .map(|x| x * 3.0)
            .chain([f32::NEG_INFINITY])
            .collect();
        let mut out = vec![0.0; row.len()];
        softmax_row(&row, &mut out);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|&v| ((v - max) as f64).exp()).sum();
        for (&v, &o) in row.iter().zip(&out) {
            let want = (((v - max) as f64).exp() / sum) as f32;
            assert!(
                (o - want).abs() <= 1e-6 * want.max(1e-30) + 1e-30,
                "{v}: {o} vs {want}"
            );
        }
        assert_eq!(
            *out.last().unwrap(),
            0.0,
            "a masked (−∞) logit gets no weight"
        );
    }
}
