//! Hand-placed demo scenes for the app, each with starter prompts that show CLIP's blind spots.

use super::{Background, Colour, Object, Relation, Scene, Shape};

/// A demo scene: file name, the lesson it teaches, scene, starter prompts.
pub struct Demo {
    pub name: &'static str,
    /// The lesson's title in the app's Starters menu.
    pub lesson: &'static str,
    /// One line: where plain CLIP fails here and what the dense map shows instead.
    pub point: &'static str,
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

fn scene(objects: Vec<Object>, relation: Option<Relation>, background: Background) -> Scene {
    Scene {
        objects,
        relation,
        background,
        aspect: 1.0,
    }
}

const WHITE: [u8; 3] = [255, 255, 255];

/// The demo scenes shipped in assets/demo (written by `clipscope synth --demo`), one per lesson;
/// the first is what the app opens on.
pub fn scenes() -> Vec<Demo> {
    vec![
        Demo {
            name: "red-circle-blue-triangle.png",
            lesson: "Recognition",
            point: "CLIP names the objects right, and each word's map sits on its object",
            scene: scene(
                vec![
                    object(Shape::Circle, Colour::Red, 0.28, 0.5, 0.38, 0.0),
                    object(Shape::Triangle, Colour::Blue, 0.73, 0.5, 0.4, 0.0),
                ],
                Some(Relation::Left),
                Background::plain(WHITE),
            ),
            prompts: &[
                "a red circle",
                "a blue triangle",
                "a blue square",
                "a green circle",
            ],
        },
        Demo {
            name: "blue-circle-red-triangle.png",
            lesson: "Binding",
            point: "the same words in a swapped pairing score alike; the maps show which colour sits on which shape",
            scene: scene(
                vec![
                    object(Shape::Circle, Colour::Blue, 0.3, 0.3, 0.34, 0.0),
                    object(Shape::Triangle, Colour::Red, 0.7, 0.68, 0.36, 0.0),
                ],
                None,
                Background::plain(WHITE),
            ),
            prompts: &[
                "a blue circle and a red triangle",
                "a red circle and a blue triangle",
            ],
        },
        Demo {
            name: "red-circle-above-blue-square.png",
            lesson: "Spatial",
            point: "plain CLIP cannot tell a relation from its converse; the maps and the DCSM scorer can",
            scene: scene(
                vec![
                    object(Shape::Circle, Colour::Red, 0.48, 0.26, 0.32, 0.0),
                    object(Shape::Square, Colour::Blue, 0.52, 0.73, 0.34, 6.0),
                ],
                Some(Relation::Above),
                Background::plain(WHITE),
            ),
            prompts: &[
                "a red circle above a blue square",
                "a blue square above a red circle",
                "a red circle below a blue square",
                "a blue square below a red circle",
            ],
        },
        Demo {
            name: "green-star-left-of-yellow-triangle.png",
            lesson: "Negation",
            point: "after \"no\" a word's map goes flat; the pooled score barely reads the \"no\"",
            scene: scene(
                vec![
                    object(Shape::Star, Colour::Green, 0.26, 0.52, 0.4, -8.0),
                    object(Shape::Triangle, Colour::Yellow, 0.74, 0.5, 0.34, 4.0),
                ],
                Some(Relation::Left),
                Background::grey(30),
            ),
            prompts: &[
                "a green star and no purple cross",
                "a purple cross and no green star",
                "a green star to the left of a yellow triangle",
                "a yellow triangle to the left of a green star",
            ],
        },
        Demo {
            name: "small-orange-cross.png",
            lesson: "Size",
            point: "size words: a small object's map is a small spot",
            scene: scene(
                vec![object(Shape::Cross, Colour::Orange, 0.62, 0.38, 0.11, 10.0)],
                None,
                Background::grey(200),
            ),
            prompts: &[
                "a small orange cross",
                "a big orange cross",
                "a scene without a circle",
                "an orange circle",
            ],
        },
        Demo {
            name: "three-shapes.png",
            lesson: "Three objects",
            point: "each phrase's words find their own object among three",
            scene: scene(
                vec![
                    object(Shape::Circle, Colour::Blue, 0.22, 0.25, 0.26, 0.0),
                    object(Shape::Triangle, Colour::Red, 0.72, 0.28, 0.3, -5.0),
                    object(Shape::Square, Colour::Purple, 0.45, 0.75, 0.26, 12.0),
                ],
                None,
                Background {
                    from: [250, 236, 214],
                    to: [214, 232, 246],
                    angle: 35.0,
                    noise: 0,
                },
            ),
            prompts: &[
                "a blue circle and a red triangle",
                "a red circle and a blue triangle",
                "a purple square",
                "a scene without a star",
            ],
        },
    ]
}
