//! Captions of a scene: true training captions with a hard negative each, and the probe families.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{phrase, Colour, Family, Object, Probe, Scene, Shape, COLOURS, HELD_OUT, SHAPES};

/// A true caption for training and, when the scene allows one, a hard negative: the same words
/// with one asserted object's colour or shape replaced by one the scene does not have.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCaption {
    pub text: String,
    pub negative: Option<String>,
}

impl Scene {
    /// A colour-shape pair absent from the scene (and allowed in `split`).
    pub(crate) fn absent(&self, rng: &mut ChaCha8Rng, allow_held_out: bool) -> (Colour, Shape) {
        loop {
            let c = COLOURS[rng.random_range(0..COLOURS.len())];
            let s = SHAPES[rng.random_range(0..SHAPES.len())];
            if !self.has(c, s) && (allow_held_out || !HELD_OUT.contains(&(c, s))) {
                return (c, s);
            }
        }
    }

    /// A shape no object of the scene has, if there is one.
    fn absent_shape(&self, rng: &mut ChaCha8Rng) -> Option<Shape> {
        let absent: Vec<Shape> = SHAPES
            .iter()
            .copied()
            .filter(|s| self.objects.iter().all(|x| x.shape != *s))
            .collect();
        (!absent.is_empty()).then(|| absent[rng.random_range(0..absent.len())])
    }

    /// `o` with its shape replaced by one no object of the scene has, or its colour by one no
    /// object has (never a held-out pair): a recognition error, not a binding one.
    fn misnamed(&self, o: &Object, rng: &mut ChaCha8Rng) -> Option<Object> {
        let shapes: Vec<Shape> = SHAPES
            .iter()
            .copied()
            .filter(|s| self.objects.iter().all(|x| x.shape != *s))
            .filter(|s| !HELD_OUT.contains(&(o.colour, *s)))
            .collect();
        let colours: Vec<Colour> = COLOURS
            .iter()
            .copied()
            .filter(|c| self.objects.iter().all(|x| x.colour != *c))
            .filter(|c| !HELD_OUT.contains(&(*c, o.shape)))
            .collect();
        let mut n = o.clone();
        let shape_first = rng.random_bool(0.5);
        match (shape_first, shapes.is_empty(), colours.is_empty()) {
            (_, true, true) => return None,
            (true, false, _) | (false, false, true) => {
                n.shape = shapes[rng.random_range(0..shapes.len())];
            }
            _ => n.colour = colours[rng.random_range(0..colours.len())],
        }
        Some(n)
    }

    /// One true caption drawn at random per call, covering every family, with a hard negative.
    /// With `shape_words`, a quarter of the captions name shapes without their colours ("a star
    /// and a circle"), so that a shape word cannot be matched by colour alone.
    pub fn training_caption(&self, rng: &mut ChaCha8Rng, shape_words: bool) -> TrainingCaption {
        let k = rng.random_range(0..self.objects.len());
        let o = &self.objects[k];
        let wrong = self.misnamed(o, rng);
        let caption = |text: String, negative: Option<String>| TrainingCaption { text, negative };
        let kinds = if shape_words { 8 } else { 6 };
        match rng.random_range(0..kinds) {
            6 => caption(
                format!("a {}", o.shape.word()),
                self.absent_shape(rng).map(|s| format!("a {}", s.word())),
            ),
            7 => {
                let mut shapes: Vec<Shape> = Vec::new();
                for x in &self.objects {
                    if !shapes.contains(&x.shape) {
                        shapes.push(x.shape);
                    }
                }
                let text = |shapes: &[Shape]| {
                    let words: Vec<String> =
                        shapes.iter().map(|s| format!("a {}", s.word())).collect();
                    words.join(" and ")
                };
                let negative = self.absent_shape(rng).map(|s| {
                    let mut swapped = shapes.clone();
                    let i = rng.random_range(0..swapped.len());
                    swapped[i] = s;
                    text(&swapped)
                });
                caption(text(&shapes), negative)
            }
            0 | 1 => {
                let negative = wrong.map(|w| {
                    let mut s = self.clone();
                    s.objects[k] = w;
                    s.description()
                });
                caption(self.description(), negative)
            }
            2 => caption(
                phrase(o.size_word(), o.colour, o.shape),
                wrong.map(|w| phrase(o.size_word(), w.colour, w.shape)),
            ),
            3 => {
                let (c, s) = self.absent(rng, false);
                let denied = format!("and no {} {}", c.word(), s.word());
                caption(
                    format!("{} {denied}", o.phrase()),
                    wrong.map(|w| format!("{} {denied}", w.phrase())),
                )
            }
            4 => match SHAPES
                .iter()
                .find(|s| !self.objects.iter().any(|o| o.shape == **s))
            {
                Some(s) if rng.random_bool(0.5) => caption(
                    format!("a scene without a {}", s.word()),
                    Some(format!("a scene without a {}", o.shape.word())),
                ),
                _ => caption(o.phrase(), wrong.map(|w| w.phrase())),
            },
            _ => caption(o.phrase(), wrong.map(|w| w.phrase())),
        }
    }

    /// The probes this scene supports: each a true caption and same-word hard negatives.
    pub fn probes(&self, seed: u64) -> Vec<Probe> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        let o = &self.objects[0];
        // Description (recognition): the object vs its shape in a colour the scene does not
        // have at all, and its colour on a shape the scene does not have at all. Negatives
        // built from the scene's other objects would test binding, a family of its own.
        // Drawn at random among the absent ones: a fixed choice (the first absent in list order)
        // would make one word the usual negative, which a model can be biased against by luck.
        let mut pick = ChaCha8Rng::seed_from_u64(seed ^ 0xDE5C_0000);
        let absent_colours: Vec<Colour> = COLOURS
            .iter()
            .copied()
            .filter(|c| self.objects.iter().all(|x| x.colour != *c))
            .collect();
        let absent_shapes: Vec<Shape> = SHAPES
            .iter()
            .copied()
            .filter(|s| self.objects.iter().all(|x| x.shape != *s))
            .collect();
        let other_colour = (!absent_colours.is_empty())
            .then(|| absent_colours[pick.random_range(0..absent_colours.len())]);
        let other_shape = (!absent_shapes.is_empty())
            .then(|| absent_shapes[pick.random_range(0..absent_shapes.len())]);
        if let (Some(c), Some(s)) = (other_colour, other_shape) {
            out.push(Probe {
                family: Family::Description,
                truth: o.phrase(),
                negatives: vec![phrase(None, c, o.shape), phrase(None, o.colour, s)],
            });
        }
        if let [a, b] = self.objects.as_slice() {
            let swapped_exists = self.has(b.colour, a.shape) || self.has(a.colour, b.shape);
            if a.colour != b.colour && a.shape != b.shape && !swapped_exists {
                out.push(Probe {
                    family: Family::Binding,
                    truth: format!("{} and {}", a.phrase(), b.phrase()),
                    negatives: vec![format!(
                        "{} and {}",
                        phrase(None, b.colour, a.shape),
                        phrase(None, a.colour, b.shape)
                    )],
                });
            }
            if let Some(rel) = self.relation {
                out.push(Probe {
                    family: Family::Spatial,
                    truth: format!("{} {} {}", a.phrase(), rel.words(), b.phrase()),
                    negatives: vec![format!("{} {} {}", b.phrase(), rel.words(), a.phrase())],
                });
            }
        }
        // Negation with the same words on both sides: "A and no B" vs "B and no A".
        let (c, s) = self.absent(&mut rng, true);
        let absent = phrase(None, c, s);
        out.push(Probe {
            family: Family::Negation,
            truth: format!("{} and no {} {}", o.phrase(), c.word(), s.word()),
            negatives: vec![format!(
                "{absent} and no {} {}",
                o.colour.word(),
                o.shape.word()
            )],
        });
        if self.objects.len() == 1 {
            if let Some(w) = o.size_word() {
                let other = if w == "small" { "big" } else { "small" };
                out.push(Probe {
                    family: Family::Size,
                    truth: phrase(Some(w), o.colour, o.shape),
                    negatives: vec![phrase(Some(other), o.colour, o.shape)],
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{scene, Split, COLOURS, SHAPES};

    #[test]
    fn probes_are_true_and_negatives_false() {
        for i in 0..300 {
            let s = scene(11, Split::Validation, i);
            for p in s.probes(i) {
                assert!(!p.negatives.contains(&p.truth));
                match p.family {
                    Family::Description => {
                        let o = &s.objects[0];
                        assert_eq!(p.truth, o.phrase());
                        for n in &p.negatives {
                            let w: Vec<&str> = n.split(' ').collect();
                            assert!(w[0] == "a" || w[0] == "an");
                            let c = COLOURS.iter().find(|c| c.word() == w[1]).unwrap();
                            let sh = SHAPES.iter().find(|x| x.word() == w[2]).unwrap();
                            assert!(!s.has(*c, *sh), "{n} is in {s:?}");
                            // One word is foreign to the whole scene: recognition, not binding.
                            let foreign_colour = s.objects.iter().all(|o| o.colour != *c);
                            let foreign_shape = s.objects.iter().all(|o| o.shape != *sh);
                            assert!(
                                foreign_colour || foreign_shape,
                                "{n} reuses the scene's words"
                            );
                        }
                    }
                    Family::Spatial | Family::Binding => {
                        let content = |t: &str| {
                            t.split(' ')
                                .filter(|w| *w != "a" && *w != "an")
                                .map(String::from)
                                .collect::<Vec<_>>()
                        };
                        let mut a = content(&p.truth);
                        let mut b = content(&p.negatives[0]);
                        a.sort();
                        b.sort();
                        assert_eq!(a, b, "same words on both sides");
                    }
                    Family::Negation => assert!(p.truth.contains(" and no ")),
                    Family::Size => assert_eq!(s.objects.len(), 1),
                }
            }
        }
    }

    #[test]
    fn held_out_pairs_never_appear_in_training() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for i in 0..500 {
            let s = scene(2, Split::Train, i);
            assert!(s.objects.iter().all(|o| !o.held_out()));
            let caption = s.training_caption(&mut rng, true);
            let texts = std::iter::once(&caption.text).chain(caption.negative.as_ref());
            for text in texts {
                for (c, sh) in HELD_OUT {
                    assert!(
                        !text.contains(&format!("{} {}", c.word(), sh.word())),
                        "{text}"
                    );
                }
            }
            let h = scene(2, Split::HeldOut, i);
            assert!(h.objects.iter().any(Object::held_out));
        }
    }

    #[test]
    fn hard_negatives_name_a_colour_or_shape_the_scene_lacks() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut with = 0;
        for i in 0..300 {
            let s = scene(4, Split::Train, i);
            let c = s.training_caption(&mut rng, true);
            let Some(n) = c.negative else { continue };
            with += 1;
            assert_ne!(n, c.text);
            // Same number of words: one word swapped.
            assert_eq!(
                n.split(' ').count(),
                c.text.split(' ').count(),
                "{n} / {}",
                c.text
            );
            let foreign = n.split(' ').any(|w| {
                COLOURS
                    .iter()
                    .any(|c| c.word() == w && !s.objects.iter().any(|o| o.colour == *c))
                    || SHAPES
                        .iter()
                        .any(|x| x.word() == w && !s.objects.iter().any(|o| o.shape == *x))
            });
            let denied_present = n.starts_with("a scene without");
            assert!(foreign || denied_present, "{n} for {:?}", s.objects);
        }
        assert!(with > 250, "{with}");
    }
}
