//! The synthetic shapes world: scenes with exact descriptions, captions, probe families, splits.

mod background;
mod captions;
pub mod contrast;
pub mod demo;
mod draw;
mod generate;
pub mod geometry;

use serde::{Deserialize, Serialize};

pub(crate) use background::hsv;
pub use background::Background;
pub use captions::TrainingCaption;
pub use draw::render;
pub(crate) use generate::placed_well;
pub use generate::{scene, MIN_SIZE};

/// Side in pixels of the scene square, the centre of every rendered image (the default model's
/// input size).
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
    /// Centre, 0..1 from the left and from the top of the scene square.
    pub x: f32,
    pub y: f32,
    /// Bounding size as a fraction of the scene square's side (1/12 … 1/2).
    pub size: f32,
    /// Rotation in degrees, clockwise on screen (±45).
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

    pub(crate) fn held_out(&self) -> bool {
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
    pub background: Background,
    /// Width / height of the source image; the scene square is its centre (1: square).
    #[serde(default = "square")]
    pub aspect: f32,
}

fn square() -> f32 {
    1.0
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
    pub(crate) fn salt(self) -> u64 {
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

impl Scene {
    /// Pixel size of the rendered source image: the scene square (`CANVAS`) widened or heightened
    /// to the aspect by an even number of pixels, so that a centre crop takes the square exactly.
    pub fn image_size(&self) -> (u32, u32) {
        let grow = |ratio: f32| {
            let extra = ((CANVAS as f32 * ratio.max(1.0)).round() as u32).saturating_sub(CANVAS);
            CANVAS + extra / 2 * 2
        };
        (grow(self.aspect), grow(1.0 / self.aspect))
    }

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
}
