//! The synthetic shapes world: scenes with exact descriptions, captions, probe families, splits.

pub mod contrast;
pub mod demo;
mod draw;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use draw::render;

/// Canvas side in pixels (the default model's input size).
pub const CANVAS: u32 = 224;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Circle,
    Square,
    Triangle,
    Star,
    Cross,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
}

pub const SHAPES: [Shape; 5] = [
    Shape::Circle,
    Shape::Square,
    Shape::Triangle,
    Shape::Star,
    Shape::Cross,
];
pub const COLOURS: [Colour; 6] = [
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Purple,
    Colour::Orange,
];

/// Colour-shape pairs that never appear in training scenes or captions (compositional test).
pub const HELD_OUT: [(Colour, Shape); 5] = [
    (Colour::Red, Shape::Star),
    (Colour::Green, Shape::Triangle),
    (Colour::Blue, Shape::Cross),
    (Colour::Yellow, Shape::Square),
    (Colour::Purple, Shape::Circle),
];

impl Shape {
    pub fn word(self) -> &'static str {
        match self {
            Self::Circle => "circle",
            Self::Square => "square",
            Self::Triangle => "triangle",
            Self::Star => "star",
            Self::Cross => "cross",
        }
    }
}

impl Colour {
    pub fn word(self) -> &'static str {
        match self {
            Self::Red => "red",
            Self::Green => "green",
            Self::Blue => "blue",
            Self::Yellow => "yellow",
            Self::Purple => "purple",
            Self::Orange => "orange",
        }
    }

    /// The nominal RGB of the colour (scenes jitter it slightly).
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Self::Red => [220, 30, 35],
            Self::Green => [30, 170, 50],
            Self::Blue => [35, 70, 220],
            Self::Yellow => [240, 210, 30],
            Self::Purple => [140, 40, 180],
            Self::Orange => [245, 130, 20],
        }
    }
}

/// One solid shape. Positions and size are fractions of the canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub shape: Shape,
    pub colour: Colour,
    /// Centre, 0..1 from the left and from the top.
    pub x: f32,
    pub y: f32,
    /// Bounding size as a fraction of the canvas side (1/12 … 1/3).
    pub size: f32,
    /// Rotation in degrees.
    pub rotation: f32,
    /// The exact RGB drawn.
    pub rgb: [u8; 3],
}

/// Sizes below this are "small", above `BIG` "big"; between, no size word is used.
pub const SMALL: f32 = 0.14;
pub const BIG: f32 = 0.24;

impl Object {
    pub fn size_word(&self) -> Option<&'static str> {
        if self.size < SMALL {
            Some("small")
        } else if self.size > BIG {
            Some("big")
        } else {
            None
        }
    }

    pub fn phrase(&self) -> String {
        phrase(None, self.colour, self.shape)
    }

    fn held_out(&self) -> bool {
        HELD_OUT.contains(&(self.colour, self.shape))
    }
}

/// "a red circle", "an orange star", "a small blue square".
pub fn phrase(size: Option<&str>, colour: Colour, shape: Shape) -> String {
    let words = match size {
        Some(size) => format!("{size} {} {}", colour.word(), shape.word()),
        None => format!("{} {}", colour.word(), shape.word()),
    };
    let article = if words.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {words}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    Above,
    Below,
    Left,
    Right,
}

impl Relation {
    pub fn words(self) -> &'static str {
        match self {
            Self::Above => "above",
            Self::Below => "below",
            Self::Left => "to the left of",
            Self::Right => "to the right of",
        }
    }
}

/// A scene and its exact description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub objects: Vec<Object>,
    /// `objects[0] <relation> objects[1]`, when the two are aligned in a column or a row.
    pub relation: Option<Relation>,
    /// Background grey level.
    pub background: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Description,
    Binding,
    Spatial,
    Negation,
    Size,
}

pub const FAMILIES: [Family; 5] = [
    Family::Description,
    Family::Binding,
    Family::Spatial,
    Family::Negation,
    Family::Size,
];

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Self::Description => "description",
            Self::Binding => "binding",
            Self::Spatial => "spatial",
            Self::Negation => "negation",
            Self::Size => "size",
        }
    }
}

/// A true caption and captions that are false of the scene but share its words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub family: Family,
    pub truth: String,
    pub negatives: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    HeldOut,
}

impl Split {
    fn salt(self) -> u64 {
        match self {
            Self::Train => 0x7472_6169_6e00_0001,
            Self::Validation => 0x7661_6c69_6400_0002,
            Self::HeldOut => 0x6865_6c64_6f00_0003,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "train" => Some(Self::Train),
            "validation" | "val" => Some(Self::Validation),
            "heldout" | "held-out" => Some(Self::HeldOut),
            _ => None,
        }
    }
}

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

fn random_object(rng: &mut ChaCha8Rng, used: &[Object]) -> Object {
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
            size: rng.random_range((1.0 / 12.0)..(1.0 / 3.0)),
            rotation: rng.random_range(-15.0..15.0),
            rgb,
        };
    }
}

/// Every object inside the canvas and none overlapping another.
fn placed_well(objects: &[Object]) -> bool {
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

fn random_scene(rng: &mut ChaCha8Rng) -> Scene {
    let background = rng.random_range(150..=240u8);
    let count = [1usize, 2, 2, 2, 3][rng.random_range(0..5)];
    let mut objects: Vec<Object> = Vec::new();
    for _ in 0..count {
        let o = random_object(rng, &objects);
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
    // Place objects; retry until they do not overlap and the relation holds.
    'placement: loop {
        for o in objects.iter_mut() {
            let r = o.size / 2.0;
            o.x = rng.random_range(r + 0.02..1.0 - r - 0.02);
            o.y = rng.random_range(r + 0.02..1.0 - r - 0.02);
        }
        if let Some(rel) = relation {
            let gap = (objects[0].size + objects[1].size) / 2.0 + 0.04;
            let shared = rng.random_range(0.25..0.75f32);
            let jitter = |rng: &mut ChaCha8Rng| rng.random_range(-0.03..0.03f32);
            let (ja, jb) = (jitter(rng), jitter(rng));
            let first = rng.random_range(0.0..1.0f32);
            let (low, high) = match rel {
                Relation::Above | Relation::Left => (0, 1),
                Relation::Below | Relation::Right => (1, 0),
            };
            // `low` is above (or left of) `high` along the main axis.
            let span = 1.0 - gap - objects[low].size / 2.0 - objects[high].size / 2.0 - 0.04;
            if span <= 0.0 {
                continue 'placement;
            }
            let p_low = objects[low].size / 2.0 + 0.02 + first * span;
            let p_high = p_low
                + gap
                + rng.random_range(
                    0.0..(1.0 - p_low - gap - objects[high].size / 2.0 - 0.02).max(0.0),
                );
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
        }
        if placed_well(&objects) {
            break;
        }
    }
    Scene {
        objects,
        relation,
        background,
    }
}

impl Scene {
    /// Whether an object of this colour and shape is in the scene.
    pub fn has(&self, colour: Colour, shape: Shape) -> bool {
        self.objects
            .iter()
            .any(|o| o.colour == colour && o.shape == shape)
    }

    /// The full description: every object, with the relation when there is one.
    pub fn description(&self) -> String {
        match (self.relation, self.objects.as_slice()) {
            (Some(rel), [a, b]) => format!("{} {} {}", a.phrase(), rel.words(), b.phrase()),
            _ => self
                .objects
                .iter()
                .map(Object::phrase)
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }

    /// A colour-shape pair absent from the scene (and allowed in `split`).
    fn absent(&self, rng: &mut ChaCha8Rng, allow_held_out: bool) -> (Colour, Shape) {
        loop {
            let c = COLOURS[rng.random_range(0..COLOURS.len())];
            let s = SHAPES[rng.random_range(0..SHAPES.len())];
            if !self.has(c, s) && (allow_held_out || !HELD_OUT.contains(&(c, s))) {
                return (c, s);
            }
        }
    }

    /// True captions for training, one drawn at random per call, covering every family.
    pub fn training_caption(&self, rng: &mut ChaCha8Rng) -> String {
        let o = &self.objects[rng.random_range(0..self.objects.len())];
        match rng.random_range(0..6) {
            0 | 1 => self.description(),
            2 => phrase(o.size_word(), o.colour, o.shape),
            3 => {
                let (c, s) = self.absent(rng, false);
                format!("{} and no {} {}", o.phrase(), c.word(), s.word())
            }
            4 => match SHAPES
                .iter()
                .find(|s| !self.objects.iter().any(|o| o.shape == **s))
            {
                Some(s) if rng.random_bool(0.5) => format!("a scene without a {}", s.word()),
                _ => o.phrase(),
            },
            _ => o.phrase(),
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
        for i in 0..300 {
            let s = scene(3, Split::Train, i);
            let Some(rel) = s.relation else { continue };
            let (a, b) = (&s.objects[0], &s.objects[1]);
            match rel {
                Relation::Above => assert!(a.y < b.y && (a.x - b.x).abs() < 0.07, "{s:?}"),
                Relation::Below => assert!(a.y > b.y && (a.x - b.x).abs() < 0.07, "{s:?}"),
                Relation::Left => assert!(a.x < b.x && (a.y - b.y).abs() < 0.07, "{s:?}"),
                Relation::Right => assert!(a.x > b.x && (a.y - b.y).abs() < 0.07, "{s:?}"),
            }
        }
    }

    #[test]
    fn sizes_cover_the_promised_range_and_objects_stay_inside() {
        let sizes: Vec<f32> = (0..400)
            .flat_map(|i| scene(5, Split::Train, i).objects)
            .map(|o| o.size)
            .collect();
        let (lo, hi) = sizes
            .iter()
            .fold((1.0f32, 0.0f32), |(l, h), s| (l.min(*s), h.max(*s)));
        assert!(lo < 0.1 && hi > 0.3, "{lo} {hi}");
        for i in 0..200 {
            for o in scene(5, Split::Train, i).objects {
                let r = o.size / 2.0;
                assert!(o.x - r >= 0.0 && o.x + r <= 1.0 && o.y - r >= 0.0 && o.y + r <= 1.0);
            }
        }
    }

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
            let caption = s.training_caption(&mut rng);
            for (c, sh) in HELD_OUT {
                assert!(
                    !caption.contains(&format!("{} {}", c.word(), sh.word())),
                    "{caption}"
                );
            }
            let h = scene(2, Split::HeldOut, i);
            assert!(h.objects.iter().any(Object::held_out));
        }
    }
}
