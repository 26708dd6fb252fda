//! Random scenes of the shapes world: deterministic per (seed, split, index), held-out pairs kept
//! out of training, relations that hold geometrically.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Background, Object, Relation, Scene, Split, COLOURS, SHAPES};

/// Largest object size (fraction of the scene square) for a scene of `count` objects.
fn max_size(count: usize) -> f32 {
    match count {
        1 => 0.5,
        2 => 0.4,
        _ => 1.0 / 3.0,
    }
}

/// Smallest object size.
pub const MIN_SIZE: f32 = 1.0 / 12.0;

/// Scene `index` of a split: deterministic from (seed, split, index) alone.
pub fn scene(seed: u64, split: Split, index: u64) -> Scene {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ split.salt() ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    loop {
        let s = random_scene(&mut rng);
        let any_held_out = s.objects.iter().any(Object::held_out);
        let ok = match split {
            Split::Train | Split::Validation => !any_held_out,
            Split::HeldOut => any_held_out,
        };
        if ok {
            return s;
        }
    }
}

fn random_object(rng: &mut ChaCha8Rng, used: &[Object], max: f32) -> Object {
    loop {
        let shape = SHAPES[rng.random_range(0..SHAPES.len())];
        let colour = COLOURS[rng.random_range(0..COLOURS.len())];
        // Two objects never share both colour and shape, so every phrase names one object.
        if used.iter().any(|o| o.shape == shape && o.colour == colour) {
            continue;
        }
        let base = colour.rgb();
        let rgb = base.map(|c| (i32::from(c) + rng.random_range(-18..=18)).clamp(0, 255) as u8);
        return Object {
            shape,
            colour,
            x: 0.5,
            y: 0.5,
            size: rng.random_range(MIN_SIZE..max),
            rotation: rng.random_range(-45.0..45.0),
            rgb,
        };
    }
}

/// Every object inside the scene square and none overlapping another.
pub(crate) fn placed_well(objects: &[Object]) -> bool {
    let inside = objects.iter().all(|o| {
        let r = o.size / 2.0;
        o.x - r >= 0.0 && o.x + r <= 1.0 && o.y - r >= 0.0 && o.y + r <= 1.0
    });
    let apart = objects.iter().enumerate().all(|(i, a)| {
        objects.iter().skip(i + 1).all(|b| {
            let d = ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt();
            d > (a.size + b.size) / 2.0 * 1.05
        })
    });
    inside && apart
}

/// Width / height of the source image: square half of the time, else 3:5 to 5:3.
fn random_aspect(rng: &mut ChaCha8Rng) -> f32 {
    if rng.random_bool(0.5) {
        1.0
    } else if rng.random_bool(0.5) {
        rng.random_range(1.05..5.0 / 3.0)
    } else {
        1.0 / rng.random_range(1.05..5.0 / 3.0)
    }
}

fn random_scene(rng: &mut ChaCha8Rng) -> Scene {
    let background = Background::random(rng);
    let aspect = random_aspect(rng);
    let count = [1usize, 2, 2, 2, 3][rng.random_range(0..5)];
    let mut objects: Vec<Object> = Vec::new();
    for _ in 0..count {
        let o = random_object(rng, &objects, max_size(count));
        objects.push(o);
    }
    let relation = if count == 2 && rng.random_bool(0.8) {
        Some(
            [
                Relation::Above,
                Relation::Below,
                Relation::Left,
                Relation::Right,
            ][rng.random_range(0..4)],
        )
    } else {
        None
    };
    // Place objects; retry until they do not overlap and the relation holds, shrinking them a
    // little every 40 tries so that every draw ends.
    let mut tries = 0;
    loop {
        tries += 1;
        if tries % 40 == 0 {
            for o in objects.iter_mut() {
                o.size = (o.size * 0.9).max(MIN_SIZE);
            }
        }
        for o in objects.iter_mut() {
            let r = o.size / 2.0;
            o.x = rng.random_range(r + 0.01..1.0 - r - 0.01);
            o.y = rng.random_range(r + 0.01..1.0 - r - 0.01);
        }
        if let Some(rel) = relation {
            if !place_related(rng, &mut objects, rel) {
                continue;
            }
        }
        if placed_well(&objects) {
            break;
        }
    }
    Scene {
        objects,
        relation,
        background,
        aspect,
    }
}

/// Puts `objects[0]` `rel` `objects[1]`: aligned in a column or a row, apart along the other axis.
fn place_related(rng: &mut ChaCha8Rng, objects: &mut [Object], rel: Relation) -> bool {
    let gap = (objects[0].size + objects[1].size) / 2.0 + 0.04;
    let (low, high) = match rel {
        Relation::Above | Relation::Left => (0, 1),
        Relation::Below | Relation::Right => (1, 0),
    };
    // `low` is above (or left of) `high` along the main axis.
    let span = 1.0 - gap - objects[low].size / 2.0 - objects[high].size / 2.0 - 0.04;
    if span <= 0.0 {
        return false;
    }
    let widest = objects[0].size.max(objects[1].size) / 2.0 + 0.02;
    if widest >= 1.0 - widest {
        return false;
    }
    let shared = rng.random_range(widest.max(0.25)..(1.0 - widest).min(0.75).max(widest + 1e-3));
    let jitter = |rng: &mut ChaCha8Rng| rng.random_range(-0.03..0.03f32);
    let (ja, jb) = (jitter(rng), jitter(rng));
    let p_low = objects[low].size / 2.0 + 0.02 + rng.random_range(0.0..1.0f32) * span;
    let room = (1.0 - p_low - gap - objects[high].size / 2.0 - 0.02).max(0.0);
    let p_high = p_low + gap + rng.random_range(0.0..=room);
    let vertical = matches!(rel, Relation::Above | Relation::Below);
    for (i, p) in [(low, p_low), (high, p_high)] {
        let j = if i == 0 { ja } else { jb };
        if vertical {
            objects[i].y = p;
            objects[i].x = shared + j;
        } else {
            objects[i].x = p;
            objects[i].y = shared + j;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::render;

    #[test]
    fn scenes_are_deterministic_per_index() {
        assert_eq!(scene(7, Split::Train, 42), scene(7, Split::Train, 42));
        assert_ne!(scene(7, Split::Train, 42), scene(7, Split::Train, 43));
        assert_ne!(scene(7, Split::Train, 42), scene(8, Split::Train, 42));
        assert_eq!(
            render(&scene(1, Split::Validation, 3)),
            render(&scene(1, Split::Validation, 3))
        );
    }

    #[test]
    fn relations_hold_geometrically() {
        let mut seen = 0;
        for i in 0..300 {
            let s = scene(3, Split::Train, i);
            let Some(rel) = s.relation else { continue };
            seen += 1;
            let (a, b) = (&s.objects[0], &s.objects[1]);
            match rel {
                Relation::Above => assert!(a.y < b.y && (a.x - b.x).abs() < 0.07, "{s:?}"),
                Relation::Below => assert!(a.y > b.y && (a.x - b.x).abs() < 0.07, "{s:?}"),
                Relation::Left => assert!(a.x < b.x && (a.y - b.y).abs() < 0.07, "{s:?}"),
                Relation::Right => assert!(a.x > b.x && (a.y - b.y).abs() < 0.07, "{s:?}"),
            }
        }
        assert!(seen > 60);
    }

    #[test]
    fn sizes_rotations_and_aspects_cover_the_promised_range() {
        let scenes: Vec<Scene> = (0..600).map(|i| scene(5, Split::Train, i)).collect();
        let objects: Vec<&Object> = scenes.iter().flat_map(|s| &s.objects).collect();
        let (lo, hi) = objects
            .iter()
            .fold((1.0f32, 0.0f32), |(l, h), o| (l.min(o.size), h.max(o.size)));
        assert!(lo < 0.1 && hi > 0.45, "{lo} {hi}");
        assert!(objects.iter().any(|o| o.rotation.abs() > 40.0));
        assert!(objects.iter().all(|o| o.rotation.abs() <= 45.0));
        assert!(scenes.iter().any(|s| s.aspect > 1.5));
        assert!(scenes.iter().any(|s| s.aspect < 0.67));
        for o in objects {
            let r = o.size / 2.0;
            assert!(o.x - r >= 0.0 && o.x + r <= 1.0 && o.y - r >= 0.0 && o.y + r <= 1.0);
        }
    }

    #[test]
    fn a_wide_scene_keeps_its_objects_in_the_centre_square() {
        let s = (0..100)
            .map(|i| scene(9, Split::Train, i))
            .find(|s| s.aspect > 1.3)
            .unwrap();
        let image = render(&s);
        let (w, h) = image.dimensions();
        assert_eq!(h, crate::world::CANVAS);
        assert!(w > h && (w - h) % 2 == 0);
        // The margins hold only background: no object's exact colour.
        for o in &s.objects {
            for y in 0..h {
                for x in (0..(w - h) / 2).chain((w + h) / 2..w) {
                    assert_ne!(image.get_pixel(x, y).0, o.rgb);
                }
            }
        }
    }
}
