//! Hand-placed demo scenes for the app, each with starter prompts that show CLIP's blind spots.

use super::{Colour, Object, Relation, Scene, Shape};

/// A demo scene: file name, scene, starter prompts.
pub struct Demo {
    pub name: &'static str,
    pub scene: Scene,
    pub prompts: &'static [&'static str],
}

fn object(shape: Shape, colour: Colour, x: f32, y: f32, size: f32, rotation: f32) -> Object {
    Object {
        shape,
        colour,
        x,
        y,
        size,
        rotation,
        rgb: colour.rgb(),
    }
}

/// The demo scenes shipped in assets/demo (written by `clipscope synth --demo`).
pub fn scenes() -> Vec<Demo> {
    vec![
        Demo {
            name: "red-circle-above-blue-square.png",
            scene: Scene {
                objects: vec![
                    object(Shape::Circle, Colour::Red, 0.48, 0.27, 0.26, 0.0),
                    object(Shape::Square, Colour::Blue, 0.52, 0.72, 0.28, 6.0),
                ],
                relation: Some(Relation::Above),
                background: 215,
            },
            prompts: &[
                "a red circle above a blue square",
                "a blue square above a red circle",
                "a blue circle above a red square",
                "a circle without a triangle",
            ],
        },
        Demo {
            name: "green-star-left-of-yellow-triangle.png",
            scene: Scene {
                objects: vec![
                    object(Shape::Star, Colour::Green, 0.25, 0.55, 0.3, -8.0),
                    object(Shape::Triangle, Colour::Yellow, 0.74, 0.52, 0.24, 4.0),
                ],
                relation: Some(Relation::Left),
                background: 185,
            },
            prompts: &[
                "a green star to the left of a yellow triangle",
                "a yellow triangle to the left of a green star",
                "a green star and no purple cross",
                "a purple cross and no green star",
            ],
        },
        Demo {
            name: "small-orange-cross.png",
            scene: Scene {
                objects: vec![object(Shape::Cross, Colour::Orange, 0.62, 0.38, 0.11, 10.0)],
                relation: None,
                background: 225,
            },
            prompts: &[
                "a small orange cross",
                "a big orange cross",
                "a scene without a circle",
                "an orange circle",
            ],
        },
        Demo {
            name: "three-shapes.png",
            scene: Scene {
                objects: vec![
                    object(Shape::Circle, Colour::Blue, 0.22, 0.25, 0.22, 0.0),
                    object(Shape::Triangle, Colour::Red, 0.72, 0.3, 0.26, -5.0),
                    object(Shape::Square, Colour::Purple, 0.45, 0.75, 0.2, 12.0),
                ],
                relation: None,
                background: 200,
            },
            prompts: &[
                "a blue circle and a red triangle",
                "a red circle and a blue triangle",
                "a purple square",
                "a scene without a star",
            ],
        },
    ]
}
