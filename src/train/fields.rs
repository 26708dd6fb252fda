//! Colour fields for training: images of one object colour and no shape, on which the shape words must all score alike.
//!
//! The shapes world never draws a held-out pair (a purple circle, a yellow square), so a model
//! can learn which shapes each colour comes in and read that instead of the outline: the shipped
//! model calls a round purple blob a square. A colour field holds an object colour with no
//! outline at all (a fill, a speckle, a gradient), so the only thing a shape word can read there
//! is the colour; asking the shape words to tie on it penalises that prior without ever drawing
//! a held-out pair.

use image::{Rgb, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::world::{Background, CANVAS, COLOURS};

/// A `CANVAS`-square colour field: an object colour (jittered as scenes jitter it) filling the
/// image, speckled over a training background, or fading into one.
pub fn field(rng: &mut ChaCha8Rng) -> RgbImage {
    let base = COLOURS[rng.random_range(0..COLOURS.len())].rgb();
    let colour = base.map(|v| (v as i32 + rng.random_range(-18..=18)).clamp(0, 255) as u8);
    let background = Background::random(rng);
    let kind = rng.random_range(0..3);
    let density = rng.random_range(0.3..0.7);
    let angle = rng.random_range(0.0f32..std::f32::consts::TAU);
    let (sin, cos) = angle.sin_cos();
    let mut image = RgbImage::new(CANVAS, CANVAS);
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        let back = background.at(x, y, CANVAS, CANVAS);
        let rgb = match kind {
            0 => colour,
            1 if rng.random_bool(density) => colour,
            1 => back,
            _ => {
                // Along a random direction, from all colour at one side to all background.
                let (u, v) = (
                    x as f32 / CANVAS as f32 - 0.5,
                    y as f32 / CANVAS as f32 - 0.5,
                );
                let t = (u * cos + v * sin + 0.71) / 1.42;
                mix(colour, back, t.clamp(0.0, 1.0))
            }
        };
        *pixel = Rgb(rgb);
    }
    image
}

/// `a` blended into `b` by `t` (0: all `a`).
fn mix(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    std::array::from_fn(|i| (a[i] as f32 * (1.0 - t) + b[i] as f32 * t).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_field_holds_an_object_colour_and_is_seeded() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let pixels = (CANVAS * CANVAS) as usize;
        let share = |image: &RgbImage, within: u8| {
            let near = |p: &Rgb<u8>, c: [u8; 3]| (0..3).all(|i| p[i].abs_diff(c[i]) <= within);
            (COLOURS.iter())
                .map(|c| image.pixels().filter(|p| near(p, c.rgb())).count())
                .max()
                .unwrap_or(0)
        };
        let mut solid = 0;
        for _ in 0..12 {
            let image = field(&mut rng);
            // A fade's most coloured side is 15% background at worst, so within the jitter plus
            // 40 levels; fills and speckles hold the colour itself on a share of the pixels.
            assert!(share(&image, 60) * 100 > pixels, "no object colour");
            solid += usize::from(share(&image, 24) * 20 > pixels);
        }
        assert!(
            solid >= 6,
            "{solid} of 12 fields hold an object colour on 5% of pixels"
        );
        let again = field(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(again, field(&mut ChaCha8Rng::seed_from_u64(3)));
    }
}
