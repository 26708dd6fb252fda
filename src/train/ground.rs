//! Grounding targets for training: which patch each named object's colour and shape tokens
//! should match best, read from the scene that the caption describes.

use crate::dcsm::scorer::word_token_starts;
use crate::model::ClipTokenizer;
use crate::world::{Object, Scene, COLOURS, SHAPES};

/// One target: token `token` of a caption should match patch `patch` of its image best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub token: usize,
    pub patch: usize,
}

/// The grounding targets of `caption` about `scene`, for a `grid` × `grid` patch layout.
///
/// Every shape word the caption asserts (not one after "no" or "without") with the colour word
/// before it, when exactly one object of the scene fits them, points both tokens at the patch
/// holding that object's centre. Tokens past `context` (truncated away) are left out.
pub fn targets(
    tokenizer: &ClipTokenizer,
    scene: &Scene,
    caption: &str,
    grid: usize,
    context: usize,
) -> Vec<Target> {
    let words: Vec<&str> = caption.split(' ').collect();
    let starts = word_token_starts(tokenizer, caption);
    let mut out = Vec::new();
    let mut denied = false;
    for (i, word) in words.iter().enumerate() {
        if *word == "no" || *word == "without" {
            denied = true;
            continue;
        }
        let Some(shape) = SHAPES.iter().find(|s| s.word() == *word) else {
            continue;
        };
        if std::mem::take(&mut denied) {
            continue;
        }
        let colour = i
            .checked_sub(1)
            .and_then(|j| COLOURS.iter().find(|c| c.word() == words[j]));
        let fits: Vec<&Object> = scene
            .objects
            .iter()
            .filter(|o| o.shape == *shape && colour.is_none_or(|c| o.colour == *c))
            .collect();
        let [object] = fits.as_slice() else {
            continue;
        };
        let patch = patch_of(object, grid);
        let mut tokens = vec![starts[i]];
        if colour.is_some() {
            tokens.push(starts[i - 1]);
        }
        out.extend(
            tokens
                .into_iter()
                .filter(|t| *t + 1 < context)
                .map(|token| Target { token, patch }),
        );
    }
    out
}

/// Row-major index of the patch holding the object's centre.
pub fn patch_of(object: &Object, grid: usize) -> usize {
    let cell = |v: f32| ((v * grid as f32) as usize).min(grid - 1);
    cell(object.y) * grid + cell(object.x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{self, Split};

    #[test]
    fn asserted_objects_point_at_their_patch_and_denied_ones_do_not() {
        let tokenizer = ClipTokenizer::bundled().unwrap();
        let mut checked = 0;
        for i in 0..200 {
            let scene = world::scene(3, Split::Train, i);
            let [a, b] = scene.objects.as_slice() else {
                continue;
            };
            if a.shape == b.shape {
                continue;
            }
            let caption = format!(
                "{} and no {} {}",
                a.phrase(),
                b.colour.word(),
                b.shape.word()
            );
            let t = targets(&tokenizer, &scene, &caption, 7, 32);
            // The colour and shape of `a`, none for the denied `b`.
            assert_eq!(t.len(), 2, "{caption}");
            assert!(t.iter().all(|t| t.patch == patch_of(a, 7)));
            let description = scene.description();
            let t = targets(&tokenizer, &scene, &description, 7, 32);
            assert_eq!(t.len(), 4, "{description}");
            assert_eq!(
                t.iter().filter(|t| t.patch == patch_of(b, 7)).count() % 2,
                0
            );
            checked += 1;
        }
        assert!(checked > 20);
    }

    #[test]
    fn the_centre_patch_is_row_major() {
        let scene = world::scene(3, Split::Train, 0);
        let mut o = scene.objects[0].clone();
        (o.x, o.y) = (0.99, 0.2);
        assert_eq!(patch_of(&o, 7), 7 + 6);
        (o.x, o.y) = (1.0, 1.0);
        assert_eq!(patch_of(&o, 7), 48);
    }
}
