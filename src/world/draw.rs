//! Renders a scene with tiny-skia: anti-aliased solid shapes on its background.

use image::RgbImage;
use tiny_skia::{FillRule, Paint, PathBuilder, Pixmap, Transform};

use super::{geometry, Scene, Shape, CANVAS};

/// The scene as an RGB image: `Scene::image_size()` pixels, the scene square of `CANVAS` pixels
/// in its centre (where the model's centre crop takes it).
pub fn render(scene: &Scene) -> RgbImage {
    let (width, height) = scene.image_size();
    let side = CANVAS as f32;
    let (left, top) = ((width - CANVAS) / 2, (height - CANVAS) / 2);
    let mut pixmap = match Pixmap::new(width, height) {
        Some(p) => p,
        None => return RgbImage::new(width, height),
    };
    let direction = scene.background.angle.to_radians().sin_cos();
    for (i, px) in pixmap.data_mut().chunks_exact_mut(4).enumerate() {
        let (x, y) = (i as u32 % width, i as u32 / width);
        let [r, g, b] = scene.background.at_with(direction, x, y, width, height);
        px.copy_from_slice(&[r, g, b, 255]);
    }
    for o in &scene.objects {
        let Some(path) = path(o.shape, o.size * side / 2.0) else {
            continue;
        };
        let mut paint = Paint::default();
        paint.set_color_rgba8(o.rgb[0], o.rgb[1], o.rgb[2], 255);
        paint.anti_alias = true;
        let t = Transform::from_rotate(o.rotation)
            .post_translate(o.x * side + left as f32, o.y * side + top as f32);
        pixmap.fill_path(&path, &paint, FillRule::Winding, t, None);
    }
    let rgb: Vec<u8> = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::from_raw(width, height, rgb).unwrap_or_else(|| RgbImage::new(width, height))
}

/// The shape centred on the origin, fitting a box of half-size `r`.
fn path(shape: Shape, r: f32) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    if shape == Shape::Circle {
        pb.push_circle(0.0, 0.0, r);
    } else {
        let points = geometry::outline(shape, r);
        pb.move_to(points[0].0, points[0].1);
        for p in &points[1..] {
            pb.line_to(p.0, p.1);
        }
        pb.close();
    }
    pb.finish()
}
