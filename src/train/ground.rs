//! Grounding targets for training: which patches each named object's colour and shape tokens
//! should match best, read from the scene that the caption describes.

use crate::engine::Word;
use crate::world::{geometry, Object, Scene, COLOURS, SHAPES};

/// One target: token `token` of a caption should match one of `patches` of its image best.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub token: usize,
    /// Row-major patches whose centres lie on the object (grown by half a patch), as
    /// `world::geometry::patches_on` gives them: where a peak counts as on the object.
    pub patches: Vec<usize>,
}

/// The grounding targets of a caption about `scene`, from the caption's tokenised `words` (SOS …
/// EOS, as `ClipTokenizer::encode` groups them, so truncated words are already gone), for a
/// `grid` × `grid` patch layout.
///
/// Every shape word the caption asserts (not one after "no" or "without") with the colour word
/// before it, when exactly one object of the scene fits them, points the first token of both at
/// the patches on that object.
pub fn targets(scene: &Scene, words: &[Word], grid: usize) -> Vec<Target> {
    let mut out = Vec::new();
    let mut denied = false;
    for (i, word) in words.iter().enumerate() {
        let word = word.text.as_str();
        if word == "no" || word == "without" {
            denied = true;
            continue;
        }
        let Some(shape) = SHAPES.iter().find(|s| s.word() == word) else {
            continue;
        };
        if std::mem::take(&mut denied) {
            continue;
        }
        let colour = i
            .checked_sub(1)
            .and_then(|j| COLOURS.iter().find(|c| c.word() == words[j].text));
        let fits: Vec<&Object> = scene
            .objects
            .iter()
            .filter(|o| o.shape == *shape && colour.is_none_or(|c| o.colour == *c))
            .collect();
        let [object] = fits.as_slice() else {
            continue;
        };
        let patches = geometry::patches_on(object, grid);
        if patches.is_empty() {
            continue;
        }
        if colour.is_some() {
            out.push(Target {
                token: words[i - 1].start,
                patches: patches.clone(),
            });
        }
        out.push(Target {
            token: words[i].start,
            patches,
        });
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
    use crate::engine::ClipTokenizer;
    use crate::world::{self, Split};

    fn words(tokenizer: &ClipTokenizer, caption: &str) -> Vec<Word> {
        tokenizer.encode(caption, 32).unwrap().words
    }

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
            let t = targets(&scene, &words(&tokenizer, &caption), 7);
            // The colour and shape of `a`, none for the denied `b`.
            assert_eq!(t.len(), 2, "{caption}");
            assert!(t.iter().all(|t| t.patches == geometry::patches_on(a, 7)));
            let description = scene.description();
            let t = targets(&scene, &words(&tokenizer, &description), 7);
            assert_eq!(t.len(), 4, "{description}");
            assert_eq!(
                t.iter()
                    .filter(|t| t.patches == geometry::patches_on(b, 7))
                    .count(),
                2
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
