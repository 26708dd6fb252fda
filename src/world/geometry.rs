//! Shape outlines shared by the renderer and the geometry checks (which patch lies on an object).

use super::{Object, Shape};

/// Corners of a shape centred on the origin that fits a box of half-size `r` (y down, unrotated).
/// The circle is a 64-gon here; the renderer draws it as a true circle.
pub fn outline(shape: Shape, r: f32) -> Vec<(f32, f32)> {
    let ring = |n: usize, radius: &dyn Fn(usize) -> f32, start: f32| -> Vec<(f32, f32)> {
        (0..n)
            .map(|i| {
                let a = (start + 360.0 * i as f32 / n as f32).to_radians();
                (radius(i) * a.cos(), radius(i) * a.sin())
            })
            .collect()
    };
    match shape {
        Shape::Circle => ring(64, &|_| r, 0.0),
        Shape::Square => {
            let h = r * 0.88;
            vec![(-h, -h), (h, -h), (h, h), (-h, h)]
        }
        Shape::Triangle => ring(3, &|_| r, -90.0)
            .into_iter()
            .map(|(x, y)| (x, y + r * 0.15))
            .collect(),
        Shape::Star => ring(10, &|i| if i % 2 == 0 { r } else { r * 0.45 }, -90.0),
        Shape::Cross => {
            let (a, b) = (r * 0.95, r * 0.32);
            vec![
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
            ]
        }
    }
}

impl Object {
    /// The object's outline in fractions of the scene square (rotated clockwise on screen by
    /// `rotation` degrees, as the renderer draws it).
    pub fn polygon(&self) -> Vec<(f32, f32)> {
        let (sin, cos) = self.rotation.to_radians().sin_cos();
        outline(self.shape, self.size / 2.0)
            .into_iter()
            .map(|(x, y)| (self.x + x * cos - y * sin, self.y + x * sin + y * cos))
            .collect()
    }

    /// Whether the point (fractions of the scene square) lies inside the object grown by `grow`.
    pub fn covers(&self, x: f32, y: f32, grow: f32) -> bool {
        let poly = self.polygon();
        inside(&poly, x, y) || distance_to_edges(&poly, x, y) <= grow
    }
}

/// Even-odd point-in-polygon test.
fn inside(poly: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut odd = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let ((xi, yi), (xj, yj)) = (poly[i], poly[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            odd = !odd;
        }
        j = i;
    }
    odd
}

/// Distance from a point to the nearest edge of a closed polygon.
fn distance_to_edges(poly: &[(f32, f32)], x: f32, y: f32) -> f32 {
    let mut best = f32::INFINITY;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (((x - a.0) * dx + (y - a.1) * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (px, py) = (a.0 + t * dx, a.1 + t * dy);
        best = best.min(((x - px).powi(2) + (y - py).powi(2)).sqrt());
    }
    best
}

/// Row-major indices of the `grid`×`grid` patches whose centres lie inside `object` grown by half
/// a patch: where a map of the object's word may peak and count as on the object.
pub fn patches_on(object: &Object, grid: usize) -> Vec<usize> {
    patches_within(object, grid, 0.5 / grid as f32)
}

/// Row-major patches of a `grid` × `grid` layout whose centres lie inside the object (not grown).
pub fn patches_inside(object: &Object, grid: usize) -> Vec<usize> {
    patches_within(object, grid, 0.0)
}

/// Patches whose centres lie inside `object` grown by `grow` (a fraction of the scene's side).
fn patches_within(object: &Object, grid: usize, grow: f32) -> Vec<usize> {
    let centre = |i: usize| (i as f32 + 0.5) / grid as f32;
    (0..grid * grid)
        .filter(|p| object.covers(centre(p % grid), centre(p / grid), grow))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Colour;

    fn object(shape: Shape, x: f32, y: f32, size: f32, rotation: f32) -> Object {
        Object {
            shape,
            colour: Colour::Red,
            x,
            y,
            size,
            rotation,
            rgb: [0; 3],
        }
    }

    #[test]
    fn a_square_covers_its_inside_and_not_far_outside() {
        let o = object(Shape::Square, 0.5, 0.5, 0.4, 0.0);
        assert!(o.covers(0.5, 0.5, 0.0));
        assert!(o.covers(0.67, 0.67, 0.0)); // half-side 0.176
        assert!(!o.covers(0.69, 0.5, 0.0));
        assert!(o.covers(0.69, 0.5, 0.02));
        // Rotated by 45°, a corner reaches 0.176·√2 = 0.249 along the axis.
        let r = object(Shape::Square, 0.5, 0.5, 0.4, 45.0);
        assert!(r.covers(0.74, 0.5, 0.0));
        assert!(!r.covers(0.67, 0.67, 0.0));
    }

    #[test]
    fn a_star_has_holes_between_its_points() {
        let o = object(Shape::Star, 0.5, 0.5, 0.5, 0.0);
        assert!(o.covers(0.5, 0.26, 0.0)); // the top point
                                           // Between two points at the outer radius: outside.
        let a = (-90.0f32 + 36.0).to_radians();
        assert!(!o.covers(0.5 + 0.24 * a.cos(), 0.5 + 0.24 * a.sin(), 0.0));
    }

    #[test]
    fn patches_on_a_small_object_include_its_centre_patch() {
        let o = object(Shape::Circle, 0.53, 0.21, 1.0 / 12.0, 0.0);
        let on = patches_on(&o, 14);
        let centre = (0.21f32 * 14.0) as usize * 14 + (0.53f32 * 14.0) as usize;
        assert!(on.contains(&centre), "{on:?}");
        assert!(on.len() <= 9, "{on:?}");
        let big = object(Shape::Square, 0.5, 0.5, 0.5, 0.0);
        assert!(patches_on(&big, 14).len() > 36);
    }
}
