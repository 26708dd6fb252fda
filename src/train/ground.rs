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

/// Dense shape labels of a scene for a `grid` × `grid` layout: (patch, index in `SHAPES`) for
/// every patch whose centre lies inside exactly one object (not grown, so a label never sits on
/// background or on two objects at once). An object no patch centre falls inside labels the
/// patch holding its centre, unless another object covers that patch too.
pub fn shape_labels(scene: &Scene, grid: usize) -> Vec<(usize, usize)> {
    let shape_index = |o: &Object| SHAPES.iter().position(|s| *s == o.shape).unwrap_or(0);
    let cover: Vec<Vec<usize>> = scene
        .objects
        .iter()
        .map(|o| geometry::patches_inside(o, grid))
        .collect();
    let claimed = |p: usize| cover.iter().filter(|c| c.contains(&p)).count();
    let mut out = Vec::new();
    for (object, patches) in scene.objects.iter().zip(&cover) {
        let label = shape_index(object);
        if patches.is_empty() {
            let p = patch_of(object, grid);
            if claimed(p) == 0 {
                out.push((p, label));
            }
            continue;
        }
        out.extend(
            patches
                .iter()
                .filter(|&&p| claimed(p) == 1)
                .map(|&p| (p, label)),
        );
    }
    out.sort_unstable();
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
    fn shape_labels_sit_inside_one_object_and_every_object_gets_some() {
        let mut labelled_objects = 0;
        let mut objects = 0;
        for i in 0..200 {
            let scene = world::scene(3, Split::Train, i);
            let labels = shape_labels(&scene, 14);
            for &(p, shape) in &labels {
                let on: Vec<&Object> = scene
                    .objects
                    .iter()
                    .filter(|o| geometry::patches_on(o, 14).contains(&p))
                    .collect();
                assert!(!on.is_empty(), "scene {i}: patch {p} is on no object");
                assert!(on.iter().any(|o| SHAPES[shape] == o.shape), "scene {i}");
            }
            let mut patches: Vec<usize> = labels.iter().map(|l| l.0).collect();
            patches.dedup();
            assert_eq!(
                patches.len(),
                labels.len(),
                "scene {i}: a patch labelled twice"
            );
            objects += scene.objects.len();
            labelled_objects += scene
                .objects
                .iter()
                .filter(|o| labels.iter().any(|&(_, s)| SHAPES[s] == o.shape))
                .count();
        }
        // Objects hidden under another one may go unlabelled, but almost every object is seen.
        assert!(
            labelled_objects * 10 > objects * 9,
            "{labelled_objects} of {objects}"
        );
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
