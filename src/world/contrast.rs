//! Hard-negative pairs for the DCSM scorer: a true caption and an "opposite" scene of which the
//! opposite caption is true and the first caption false (swapped places, colours, presence, size).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{phrase, Family, Object, Relation, Scene, BIG, COLOURS, SHAPES, SMALL};

/// A caption of a scene, an opposite scene and the opposite caption (true of it, false of the
/// first scene, and the first caption false of it).
#[derive(Debug, Clone, PartialEq)]
pub struct Contrast {
    pub family: Family,
    pub caption: String,
    pub opposite: Scene,
    pub opposite_caption: String,
}

/// One contrast of the scene, its family drawn at random among those the scene supports.
/// `allow_held_out` lets the opposite scene contain held-out colour-shape pairs (off in training).
pub fn contrast(scene: &Scene, rng: &mut ChaCha8Rng, allow_held_out: bool) -> Option<Contrast> {
    contrast_of(scene, rng, allow_held_out, &super::FAMILIES)
}

/// As `contrast`, among the given families only.
pub fn contrast_of(
    scene: &Scene,
    rng: &mut ChaCha8Rng,
    allow_held_out: bool,
    wanted: &[Family],
) -> Option<Contrast> {
    let mut families = vec![Family::Description, Family::Negation];
    if scene.objects.len() == 2 {
        families.push(Family::Binding);
        if scene.relation.is_some() {
            // Relations are the scorer's main lesson: weigh them up.
            families.extend([Family::Spatial, Family::Spatial]);
        }
    }
    if scene.objects.len() == 1 && scene.objects[0].size_word().is_some() {
        families.push(Family::Size);
    }
    families.retain(|f| wanted.contains(f));
    if families.is_empty() {
        return None;
    }
    // A family can fail for a scene (no room to swap, a swap would make a held-out pair).
    for _ in 0..families.len() {
        let family = families[rng.random_range(0..families.len())];
        let made = match family {
            Family::Description => description(scene, rng),
            Family::Binding => binding(scene),
            Family::Spatial => spatial(scene),
            Family::Negation => negation(scene, rng, allow_held_out),
            Family::Size => size(scene, rng),
        };
        if let Some(c) = made {
            let ok = allow_held_out || c.opposite.objects.iter().all(|o| !o.held_out());
            if ok {
                return Some(c);
            }
        }
    }
    None
}

fn with_look(o: &Object, colour: super::Colour, shape: super::Shape) -> Object {
    Object {
        colour,
        shape,
        // Same jitter as the original draw, moved to the new colour.
        rgb: shifted_rgb(o, colour),
        ..o.clone()
    }
}

fn shifted_rgb(o: &Object, colour: super::Colour) -> [u8; 3] {
    let (from, to) = (o.colour.rgb(), colour.rgb());
    std::array::from_fn(|i| {
        (i32::from(to[i]) + i32::from(o.rgb[i]) - i32::from(from[i])).clamp(0, 255) as u8
    })
}

/// "a red circle" → the same object in an absent colour or as an absent shape.
fn description(scene: &Scene, rng: &mut ChaCha8Rng) -> Option<Contrast> {
    let o = &scene.objects[0];
    let colours: Vec<_> = COLOURS
        .iter()
        .filter(|c| scene.objects.iter().all(|x| x.colour != **c))
        .collect();
    let shapes: Vec<_> = SHAPES
        .iter()
        .filter(|s| scene.objects.iter().all(|x| x.shape != **s))
        .collect();
    let changed = if rng.random_bool(0.5) && !colours.is_empty() {
        with_look(o, *colours[rng.random_range(0..colours.len())], o.shape)
    } else if !shapes.is_empty() {
        with_look(o, o.colour, *shapes[rng.random_range(0..shapes.len())])
    } else {
        return None;
    };
    let mut opposite = scene.clone();
    opposite.objects[0] = changed.clone();
    Some(Contrast {
        family: Family::Description,
        caption: o.phrase(),
        opposite_caption: changed.phrase(),
        opposite,
    })
}

/// "a red circle and a blue square" → a blue circle and a red square.
fn binding(scene: &Scene) -> Option<Contrast> {
    let [a, b] = scene.objects.as_slice() else {
        return None;
    };
    if a.colour == b.colour || a.shape == b.shape {
        return None;
    }
    let (na, nb) = (
        with_look(a, b.colour, a.shape),
        with_look(b, a.colour, b.shape),
    );
    let opposite = Scene {
        objects: vec![na.clone(), nb.clone()],
        ..scene.clone()
    };
    Some(Contrast {
        family: Family::Binding,
        caption: format!("{} and {}", a.phrase(), b.phrase()),
        opposite_caption: format!("{} and {}", na.phrase(), nb.phrase()),
        opposite,
    })
}

/// "A above B" → the two objects trade places, so "B above A".
fn spatial(scene: &Scene) -> Option<Contrast> {
    let (Some(rel), [a, b]) = (scene.relation, scene.objects.as_slice()) else {
        return None;
    };
    let (mut na, mut nb) = (a.clone(), b.clone());
    (na.x, na.y, nb.x, nb.y) = (b.x, b.y, a.x, a.y);
    let objects = vec![na, nb];
    if !super::placed_well(&objects) {
        return None;
    }
    let opposite = Scene {
        objects,
        relation: Some(rel),
        ..scene.clone()
    };
    let words = rel.words();
    Some(Contrast {
        family: Family::Spatial,
        caption: format!("{} {words} {}", a.phrase(), b.phrase()),
        opposite_caption: format!("{} {words} {}", b.phrase(), a.phrase()),
        opposite,
    })
}

/// "A and no B" → A replaced by B, so "B and no A".
fn negation(scene: &Scene, rng: &mut ChaCha8Rng, allow_held_out: bool) -> Option<Contrast> {
    let i = rng.random_range(0..scene.objects.len());
    let o = &scene.objects[i];
    let (c, s) = scene.absent(rng, allow_held_out);
    let mut opposite = scene.clone();
    opposite.objects[i] = with_look(o, c, s);
    // Other objects must not already be what "no A" denies.
    if opposite.has(o.colour, o.shape) {
        return None;
    }
    opposite.relation = scene.relation.filter(|_| opposite.objects.len() == 2);
    Some(Contrast {
        family: Family::Negation,
        caption: format!("{} and no {} {}", o.phrase(), c.word(), s.word()),
        opposite_caption: format!(
            "{} and no {} {}",
            phrase(None, c, s),
            o.colour.word(),
            o.shape.word()
        ),
        opposite,
    })
}

/// "a small red circle" → the same object big (or the other way round).
fn size(scene: &Scene, rng: &mut ChaCha8Rng) -> Option<Contrast> {
    let [o] = scene.objects.as_slice() else {
        return None;
    };
    let word = o.size_word()?;
    let mut n = o.clone();
    n.size = if word == "small" {
        rng.random_range(BIG + 0.01..0.45)
    } else {
        rng.random_range(super::MIN_SIZE..SMALL - 0.01)
    };
    let r = n.size / 2.0;
    n.x = n.x.clamp(r + 0.01, 1.0 - r - 0.01);
    n.y = n.y.clamp(r + 0.01, 1.0 - r - 0.01);
    let other = n.size_word()?;
    let opposite = Scene {
        objects: vec![n],
        ..scene.clone()
    };
    Some(Contrast {
        family: Family::Size,
        caption: phrase(Some(word), o.colour, o.shape),
        opposite_caption: phrase(Some(other), o.colour, o.shape),
        opposite,
    })
}

/// Whether `a rel b` holds geometrically in a scene's placement (as the generator makes it).
pub fn relation_holds(rel: Relation, a: &Object, b: &Object) -> bool {
    match rel {
        Relation::Above => a.y < b.y,
        Relation::Below => a.y > b.y,
        Relation::Left => a.x < b.x,
        Relation::Right => a.x > b.x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{scene, Split};
    use rand::SeedableRng;

    #[test]
    fn opposites_flip_the_caption() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut seen = std::collections::HashSet::new();
        for i in 0..400 {
            let s = scene(9, Split::Train, i);
            let Some(c) = contrast(&s, &mut rng, false) else {
                continue;
            };
            seen.insert(c.family);
            assert_ne!(c.caption, c.opposite_caption);
            assert!(c.opposite.objects.iter().all(|o| !o.held_out()));
            match c.family {
                Family::Spatial => {
                    let rel = c.opposite.relation.unwrap();
                    let [a, b] = c.opposite.objects.as_slice() else {
                        panic!()
                    };
                    // Object 1 (named first in the opposite caption) now stands where 0 stood.
                    assert!(relation_holds(rel, b, a), "{c:?}");
                    assert!(crate::world::placed_well(&c.opposite.objects));
                }
                Family::Binding => {
                    let [a, b] = c.opposite.objects.as_slice() else {
                        panic!()
                    };
                    assert_eq!(
                        c.opposite_caption,
                        format!("{} and {}", a.phrase(), b.phrase())
                    );
                    assert!(!c.opposite.has(s.objects[0].colour, s.objects[0].shape));
                }
                Family::Negation => {
                    let first_named = c.caption.split(" and no ").next().unwrap();
                    assert!(c.opposite.objects.iter().all(|o| o.phrase() != first_named));
                }
                Family::Size => {
                    let w = c.opposite.objects[0].size_word().unwrap();
                    assert!(c.opposite_caption.contains(w) && !c.caption.contains(w));
                }
                Family::Description => {
                    assert!(c
                        .opposite
                        .objects
                        .iter()
                        .any(|o| o.phrase() == c.opposite_caption));
                    assert!(c.opposite.objects.iter().all(|o| o.phrase() != c.caption));
                }
            }
        }
        assert_eq!(seen.len(), 5, "every family is made: {seen:?}");
    }
}
