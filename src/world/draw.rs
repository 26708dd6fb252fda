//! Renders a scene with tiny-skia: anti-aliased solid shapes on a plain background.

use image::RgbImage;
use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, Transform};

use super::{Scene, Shape, CANVAS};

/// The scene as a `CANVAS`×`CANVAS` RGB image.
pub fn render(scene: &Scene) -> RgbImage {
    let side = CANVAS as f32;
    let mut pixmap = match Pixmap::new(CANVAS, CANVAS) {
        Some(p) => p,
        None => return RgbImage::new(CANVAS, CANVAS),
    };
    let g = scene.background;
    pixmap.fill(tiny_skia::Color::from_rgba8(g, g, g, 255));
    for o in &scene.objects {
        let r = o.size * side / 2.0;
        let Some(path) = outline(o.shape, r) else {
            continue;
        };
        let mut paint = Paint::default();
        paint.set_color_rgba8(o.rgb[0], o.rgb[1], o.rgb[2], 255);
        paint.anti_alias = true;
        let t = Transform::from_rotate(o.rotation).post_translate(o.x * side, o.y * side);
        pixmap.fill_path(&path, &paint, FillRule::Winding, t, None);
    }
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::from_raw(CANVAS, CANVAS, rgb).unwrap_or_else(|| RgbImage::new(CANVAS, CANVAS))
}

/// The shape centred on the origin, fitting a box of half-size `r`.
fn outline(shape: Shape, r: f32) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    let polygon = |pb: &mut PathBuilder, points: &[(f32, f32)]| {
        pb.move_to(points[0].0, points[0].1);
        for p in &points[1..] {
            pb.line_to(p.0, p.1);
        }
        pb.close();
    };
    match shape {
        Shape::Circle => pb.push_circle(0.0, 0.0, r),
        Shape::Square => {
            let h = r * 0.88;
            polygon(&mut pb, &[(-h, -h), (h, -h), (h, h), (-h, h)]);
        }
        Shape::Triangle => {
            let pts: Vec<(f32, f32)> = [-90.0f32, 30.0, 150.0]
                .iter()
                .map(|a| {
                    (
                        r * a.to_radians().cos(),
                        r * 0.15 + r * a.to_radians().sin(),
                    )
                })
                .collect();
            polygon(&mut pb, &pts);
        }
        Shape::Star => {
            let pts: Vec<(f32, f32)> = (0..10)
                .map(|i| {
                    let a = (-90.0 + 36.0 * i as f32).to_radians();
                    let rr = if i % 2 == 0 { r } else { r * 0.45 };
                    (rr * a.cos(), rr * a.sin())
                })
                .collect();
            polygon(&mut pb, &pts);
        }
        Shape::Cross => {
            let (a, b) = (r * 0.95, r * 0.32);
            polygon(
                &mut pb,
                &[
                    (-b, -a),
                    (b, -a),
                    (b, -b),
                    (a, -b),
                    (a, b),
                    (b, b),
                    (b, a),
                    (-b, a),
                    (-b, b),
                    (-a, b),
                    (-a, -b),
                    (-b, -b),
                ],
            );
        }
    }
    pb.finish()
}
