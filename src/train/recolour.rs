//! Shapes in colours no object has, for training: there, only the outline can tell the shape.
//!
//! The shapes world never draws a held-out pair, so a model can learn which shapes each object
//! colour comes in and answer from the colour instead of the outline (the shipped model ranks "a
//! circle" 4th of 5 on a round purple blob). A recoloured scene is one object of a training scene
//! painted a hue at least `MARGIN` degrees from every object colour's, so no colour word could
//! name it and nothing in it is a held-out pair; asked for its shape, the model can only read
//! the outline.

use candle_core::{Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::data::{scene_pixels, Batcher};
use crate::world::{self, Scene, Split, COLOURS};

/// Least distance in degrees of hue between a recoloured object and any object colour (whose
/// ±18-level jitter moves its hue by up to 17°).
pub const MARGIN: f32 = 30.0;

/// Scenes of one object in a colour no object has, with the labels of the shape losses.
pub struct Recoloured {
    /// (R, 3, S, S) normalised pixels.
    pub pixels: Tensor,
    /// (image, index in `SHAPES`) of each scene's one object.
    pub shapes: Vec<(u32, u32)>,
    /// Dense labels as `Batch::shape_patches`.
    pub patches: Vec<(u32, u32)>,
    /// Kept token rows, as `Batch::kept`.
    pub kept: Option<Tensor>,
    /// (R, 3, S, S) the same scenes with each object in its own (palette) colour, when the
    /// batcher pairs them (`Batcher::paired`): a training pair, drawn as it was.
    pub twins: Option<Tensor>,
}

impl Batcher {
    /// `self.recoloured` recoloured scenes, a share of them shrunk (`recoloured_small`), as a
    /// batch's part; `keep_rng` picks their kept tokens under token dropping.
    pub(super) fn recoloured_part(
        &self,
        rng: &mut ChaCha8Rng,
        keep_rng: &mut ChaCha8Rng,
    ) -> Result<Recoloured> {
        let (scenes, own): (Vec<Scene>, Vec<Vec<[u8; 3]>>) = (0..self.recoloured)
            .map(|_| {
                let (scene, own) = recoloured(self.seed, rng);
                // Drawn only when asked, so runs without it see the same scenes as before.
                let small =
                    self.recoloured_small > 0.0 && rng.random_bool(self.recoloured_small.min(1.0));
                match small {
                    true => (shrunk(scene, rng), own),
                    false => (scene, own),
                }
            })
            .unzip();
        let side = self.pre.crop as usize;
        let to_pixels = |scenes: &[Scene]| -> Result<Tensor> {
            let pixels: Vec<f32> = (scenes.iter())
                .flat_map(|s| scene_pixels(s, &self.pre))
                .collect();
            Tensor::from_vec(pixels, (scenes.len(), 3, side, side), &self.device)
        };
        let twins = match self.paired {
            true => {
                let twins: Vec<Scene> = (scenes.iter().zip(&own))
                    .map(|(s, rgb)| in_colours(s.clone(), rgb))
                    .collect();
                Some(to_pixels(&twins)?)
            }
            false => None,
        };
        let shape = |s: &Scene| {
            let first = s.objects.first()?;
            world::SHAPES.iter().position(|&x| x == first.shape)
        };
        let kept = self.kept(&scenes, keep_rng);
        let patches = match &kept {
            Some(k) => k.labels(&self.shape_patches(&scenes)),
            None => self.shape_patches(&scenes),
        };
        Ok(Recoloured {
            pixels: to_pixels(&scenes)?,
            shapes: (scenes.iter().enumerate())
                .filter_map(|(i, s)| Some((i as u32, shape(s)? as u32)))
                .collect(),
            patches,
            kept: self.rows(kept.as_ref())?,
            twins,
        })
    }
}

/// Hue in degrees of an RGB colour (0 for greys).
pub fn hue(rgb: [u8; 3]) -> f32 {
    let [r, g, b] = rgb.map(f32::from);
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let c = max - min;
    if c == 0.0 {
        return 0.0;
    }
    let h = if max == r {
        ((g - b) / c).rem_euclid(6.0)
    } else if max == g {
        (b - r) / c + 2.0
    } else {
        (r - g) / c + 4.0
    };
    h * 60.0
}

/// Circular distance between two hues in degrees.
fn apart(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// A saturated colour whose hue is at least `MARGIN` from every object colour's.
pub fn off_palette(rng: &mut ChaCha8Rng) -> [u8; 3] {
    let palette: Vec<f32> = COLOURS.iter().map(|c| hue(c.rgb())).collect();
    loop {
        let h = rng.random_range(0.0f32..360.0);
        if palette.iter().all(|&p| apart(h, p) >= MARGIN) {
            let (s, v) = (rng.random_range(0.6..1.0), rng.random_range(0.6..1.0));
            return world::hsv(h, s, v);
        }
    }
}

/// The first object of a random training scene (its background and aspect kept, the relation
/// dropped), painted an off-palette colour; and its objects' own colours, in order.
pub fn recoloured(seed: u64, rng: &mut ChaCha8Rng) -> (Scene, Vec<[u8; 3]>) {
    let scene = one_object(seed, rng);
    let own = scene.objects.iter().map(|o| o.rgb).collect();
    (painted(scene, rng), own)
}

/// The first object of a random training scene, in its own colour (a training pair).
fn one_object(seed: u64, rng: &mut ChaCha8Rng) -> Scene {
    let mut scene = world::scene(seed, Split::Train, rng.random_range(0..u64::MAX / 2));
    scene.objects.truncate(1);
    scene.relation = None;
    scene
}

/// `scene` with every object painted an off-palette colour.
fn painted(mut scene: Scene, rng: &mut ChaCha8Rng) -> Scene {
    for o in &mut scene.objects {
        o.rgb = off_palette(rng);
    }
    scene
}

/// `scene` with its objects painted `rgb`, in order.
fn in_colours(mut scene: Scene, rgb: &[[u8; 3]]) -> Scene {
    for (o, &c) in scene.objects.iter_mut().zip(rgb) {
        o.rgb = c;
    }
    scene
}

/// Largest side of a shrunk object, as a fraction of the scene's: held-out shapes are confused
/// most below it (`tools/confusions.py`).
pub const SMALL_SIDE: f32 = 0.25;

/// `scene` with its object shrunk about its centre to a side drawn between the world's least
/// and `SMALL_SIDE` (an object already smaller stays as it is), so it stays inside the picture.
pub fn shrunk(mut scene: Scene, rng: &mut ChaCha8Rng) -> Scene {
    for o in &mut scene.objects {
        o.size = o.size.min(rng.random_range(world::MIN_SIZE..SMALL_SIDE));
    }
    scene
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn hues_of_the_primaries_and_the_palette_are_where_they_belong() {
        assert_eq!(hue([255, 0, 0]), 0.0);
        assert!((hue([0, 255, 0]) - 120.0).abs() < 1e-4);
        assert!((hue([0, 0, 255]) - 240.0).abs() < 1e-4);
        assert!((hue([255, 0, 128]) - 329.9).abs() < 0.1);
        assert!(apart(350.0, 10.0) == 20.0);
        let purple = hue(world::Colour::Purple.rgb());
        assert!(purple > 270.0 && purple < 300.0, "{purple}");
    }

    #[test]
    fn recoloured_scenes_hold_one_object_far_in_hue_from_every_object_colour() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut shapes = std::collections::HashSet::new();
        for _ in 0..200 {
            let scene = recoloured(4, &mut rng).0;
            assert_eq!(scene.objects.len(), 1);
            let o = &scene.objects[0];
            shapes.insert(o.shape);
            let h = hue(o.rgb);
            for c in COLOURS {
                assert!(
                    apart(h, hue(c.rgb())) >= MARGIN - 1.0,
                    "{:?} near {c:?}",
                    o.rgb
                );
            }
            let [r, g, b] = o.rgb;
            assert!(
                r.max(g).max(b) - r.min(g).min(b) > 80,
                "{:?} is not saturated",
                o.rgb
            );
        }
        assert_eq!(shapes.len(), world::SHAPES.len());
        let (again, own) = recoloured(4, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(again, recoloured(4, &mut ChaCha8Rng::seed_from_u64(1)).0);
        let first = one_object(4, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(own, vec![first.objects[0].rgb]);
        assert_eq!(in_colours(again, &own), first);
    }

    #[test]
    fn twins_are_the_recoloured_scenes_in_their_own_colours_and_change_nothing_else() {
        let config = crate::train::clip::default_config();
        let mut batcher = Batcher::new(&config, 3).unwrap();
        batcher.recoloured = 4;
        batcher.recoloured_small = 0.5;
        let part = |b: &Batcher| {
            let mut rng = ChaCha8Rng::seed_from_u64(8);
            let mut keep = ChaCha8Rng::seed_from_u64(9);
            let r = b.recoloured_part(&mut rng, &mut keep).unwrap();
            (r, rng.random::<u64>())
        };
        let (alone, after_alone) = part(&batcher);
        assert!(alone.twins.is_none());
        batcher.paired = true;
        let (paired, after_paired) = part(&batcher);
        // Pairing draws nothing more: the recoloured scenes and the generator are as without it.
        assert_eq!(after_alone, after_paired);
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&alone.pixels), flat(&paired.pixels));
        assert_eq!(paired.twins.unwrap().dims(), paired.pixels.dims());
        // Unshrunk, the first twin is the first training object drawn from the stream, as drawn.
        batcher.recoloured_small = 0.0;
        let unshrunk = part(&batcher).0;
        let twin = flat(&unshrunk.twins.unwrap().get(0).unwrap());
        let own = one_object(3, &mut ChaCha8Rng::seed_from_u64(8));
        assert_eq!(twin, scene_pixels(&own, &batcher.pre));
        assert_ne!(twin, flat(&unshrunk.pixels.get(0).unwrap()));
    }

    #[test]
    fn shrunk_objects_are_small_and_stay_where_they_were() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..200 {
            let scene = recoloured(4, &mut rng).0;
            let before = scene.objects[0].clone();
            let after = shrunk(scene, &mut rng).objects[0].clone();
            assert!(after.size < SMALL_SIDE, "{}", after.size);
            assert!(after.size == before.size || after.size >= world::MIN_SIZE);
            assert!(after.size <= before.size);
            assert_eq!(
                (after.x, after.y, after.shape),
                (before.x, before.y, before.shape)
            );
            assert_eq!(after.rgb, before.rgb);
        }
    }

    #[test]
    fn the_palette_jitter_stays_within_seventeen_degrees_of_hue() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for c in COLOURS {
            let base = hue(c.rgb());
            for _ in 0..200 {
                let rgb = c
                    .rgb()
                    .map(|v| (v as i32 + rng.random_range(-18..=18)).clamp(0, 255) as u8);
                assert!(apart(hue(rgb), base) < 17.0, "{c:?} {rgb:?}");
            }
        }
    }
}
