//! Scene backgrounds: plain, two-tone gradients and mild noise, in colours no object has.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A background: a linear gradient from `from` to `to` (plain when they are equal) across the
/// whole source image, plus uniform per-pixel noise of ±`noise` levels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Background {
    pub from: [u8; 3],
    pub to: [u8; 3],
    /// Direction of the gradient in degrees (0: left to right, 90: top to bottom).
    #[serde(default)]
    pub angle: f32,
    #[serde(default)]
    pub noise: u8,
}

impl Background {
    pub fn plain(rgb: [u8; 3]) -> Self {
        Self {
            from: rgb,
            to: rgb,
            angle: 0.0,
            noise: 0,
        }
    }

    pub fn grey(level: u8) -> Self {
        Self::plain([level; 3])
    }

    /// A random background of the training world: white, black, any grey, a light or dark tint
    /// of low saturation (never an object colour), sometimes a gradient, sometimes noisy.
    pub fn random(rng: &mut ChaCha8Rng) -> Self {
        let from = colour(rng);
        let to = if rng.random_bool(0.3) {
            colour(rng)
        } else {
            from
        };
        Self {
            from,
            to,
            angle: rng.random_range(0.0..360.0),
            noise: if rng.random_bool(0.3) {
                rng.random_range(2..=10)
            } else {
                0
            },
        }
    }

    /// The colour at pixel (x, y) of a `width`×`height` image.
    pub fn at(&self, x: u32, y: u32, width: u32, height: u32) -> [u8; 3] {
        self.at_with(self.angle.to_radians().sin_cos(), x, y, width, height)
    }

    /// As `at`, with the direction's (sin, cos) worked out once per image.
    pub(crate) fn at_with(
        &self,
        (sin, cos): (f32, f32),
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    ) -> [u8; 3] {
        let (u, v) = (
            (x as f32 + 0.5) / width as f32 - 0.5,
            (y as f32 + 0.5) / height as f32 - 0.5,
        );
        // Projection onto the direction, from -0.71..0.71 to 0..1.
        let t = ((u * cos + v * sin) / std::f32::consts::SQRT_2 + 0.5).clamp(0.0, 1.0);
        let n = if self.noise > 0 {
            let h = hash(x, y, self.from, self.angle.to_bits());
            (h % (2 * u32::from(self.noise) + 1)) as f32 - f32::from(self.noise)
        } else {
            0.0
        };
        let mut out = [0u8; 3];
        for (k, o) in out.iter_mut().enumerate() {
            let c = f32::from(self.from[k]) * (1.0 - t) + f32::from(self.to[k]) * t + n;
            *o = c.round().clamp(0.0, 255.0) as u8;
        }
        out
    }
}

/// White, black, any grey, or a low-saturation light or dark tint.
fn colour(rng: &mut ChaCha8Rng) -> [u8; 3] {
    match rng.random_range(0..20) {
        0..=3 => [rng.random_range(242..=255); 3],
        4..=5 => [rng.random_range(0..=25); 3],
        6..=10 => [rng.random_range(0..=255); 3],
        11..=16 => hsv(
            rng.random_range(0.0..360.0),
            rng.random_range(0.04..0.22),
            rng.random_range(0.85..1.0),
        ),
        _ => hsv(
            rng.random_range(0.0..360.0),
            rng.random_range(0.1..0.45),
            rng.random_range(0.08..0.3),
        ),
    }
}

/// RGB of a hue in degrees, a saturation and a value (0..1).
pub(crate) fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// A deterministic per-pixel hash (the noise pattern of one background).
fn hash(x: u32, y: u32, rgb: [u8; 3], salt: u32) -> u32 {
    let mut h = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77) ^ salt;
    h ^= u32::from_le_bytes([rgb[0], rgb[1], rgb[2], 0x5A]);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^ (h >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backgrounds_span_white_black_and_tints_and_are_never_saturated() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let all: Vec<Background> = (0..400).map(|_| Background::random(&mut rng)).collect();
        let level = |c: [u8; 3]| c.iter().map(|v| u32::from(*v)).sum::<u32>() / 3;
        assert!(all.iter().any(|b| level(b.from) >= 242));
        assert!(all.iter().any(|b| level(b.from) <= 25));
        assert!(all.iter().any(|b| b.from != b.to));
        assert!(all.iter().any(|b| b.noise > 0));
        for b in &all {
            for c in [b.from, b.to] {
                let (max, min) = (c.iter().max().unwrap(), c.iter().min().unwrap());
                // Saturation (max - min) / max stays below every object colour's.
                assert!(
                    f32::from(max - min) <= 0.46 * f32::from(*max).max(1.0),
                    "{c:?}"
                );
            }
        }
    }

    #[test]
    fn a_gradient_runs_from_one_colour_to_the_other() {
        let b = Background {
            from: [0; 3],
            to: [200; 3],
            angle: 0.0,
            noise: 0,
        };
        assert!(b.at(0, 50, 224, 224)[0] < 60);
        assert!(b.at(223, 50, 224, 224)[0] > 140);
        assert_eq!(b.at(10, 0, 224, 224), b.at(10, 223, 224, 224));
    }
}
