//! The built-in demo scenes (assets/demo, made by `clipscope synth --demo`) and their starters.

/// A demo image and the prompts that go with it.
pub struct Demo {
    pub name: &'static str,
    pub lesson: &'static str,
    pub point: &'static str,
    pub png: &'static [u8],
    pub prompts: Vec<&'static str>,
}

macro_rules! demo_png {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../assets/demo/", $name)).as_slice(),
        )
    };
}

pub fn scenes() -> Vec<Demo> {
    let files = [
        demo_png!("red-circle-blue-triangle.png"),
        demo_png!("blue-circle-red-triangle.png"),
        demo_png!("red-circle-above-blue-square.png"),
        demo_png!("green-star-left-of-yellow-triangle.png"),
        demo_png!("small-orange-cross.png"),
        demo_png!("three-shapes.png"),
    ];
    crate::world::demo::scenes()
        .into_iter()
        .filter_map(|d| {
            let png = files.iter().find(|(n, _)| *n == d.name)?.1;
            Some(Demo {
                name: d.name,
                lesson: d.lesson,
                point: d.point,
                png,
                prompts: d.prompts.to_vec(),
            })
        })
        .collect()
}
