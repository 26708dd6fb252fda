//! A CPU renderer for egui_kittest snapshots: egui's textured triangles rasterised in software,
//! so the UI tests take snapshots on machines without a GPU (CI, this one).
//!
//! It blends premultiplied colours in gamma space, as egui's own renderers do, samples textures
//! bilinearly or nearest as each texture asks, and clips to each primitive's clip rectangle. It
//! is made for comparing pictures of our own UI with themselves over time, not for pixel parity
//! with wgpu.

use std::collections::HashMap;

use egui::epaint::{ClippedPrimitive, Primitive, Vertex};
use egui::{Color32, ColorImage, TextureFilter, TextureId, TextureOptions, TexturesDelta};
use egui_kittest::TestRenderer;

struct Texture {
    image: ColorImage,
    options: TextureOptions,
}

#[derive(Default)]
pub struct CpuRenderer {
    textures: HashMap<TextureId, Texture>,
    /// Textures the last frame freed: egui frees them after that frame is painted.
    freed: Vec<TextureId>,
}

impl CpuRenderer {
    /// A whole new texture, or a patch of an existing one.
    fn apply(&mut self, id: TextureId, d: egui::epaint::ImageDelta) {
        let egui::ImageData::Color(patch) = d.image;
        match (d.pos, self.textures.get_mut(&id)) {
            (Some([x0, y0]), Some(t)) => {
                let w = t.image.size[0];
                for y in 0..patch.size[1] {
                    for x in 0..patch.size[0] {
                        t.image.pixels[(y0 + y) * w + x0 + x] = patch.pixels[y * patch.size[0] + x];
                    }
                }
            }
            _ => {
                let texture = Texture {
                    image: (*patch).clone(),
                    options: d.options,
                };
                self.textures.insert(id, texture);
            }
        }
    }
}

impl TestRenderer for CpuRenderer {
    fn handle_delta(&mut self, delta: &mut TexturesDelta) {
        for id in self.freed.drain(..) {
            self.textures.remove(&id);
        }
        for (id, deltas) in delta.set.drain() {
            for d in deltas {
                self.apply(id, d);
            }
        }
        self.freed.extend(delta.free.drain());
    }

    fn render(
        &mut self,
        ctx: &egui::Context,
        output: &egui::FullOutput,
    ) -> Result<image::RgbaImage, String> {
        let ppp = output.pixels_per_point;
        let screen = ctx.content_rect();
        let (w, h) = (
            (screen.width() * ppp).round() as usize,
            (screen.height() * ppp).round() as usize,
        );
        let mut target = vec![[0f32; 4]; w * h];
        for ClippedPrimitive {
            clip_rect,
            primitive,
        } in ctx.tessellate(output.shapes.clone(), ppp)
        {
            let Primitive::Mesh(mesh) = primitive else {
                continue;
            };
            let Some(texture) = self.textures.get(&mesh.texture_id) else {
                return Err(format!("no texture {:?}", mesh.texture_id));
            };
            let clip = [
                (clip_rect.min.x * ppp).max(0.0),
                (clip_rect.min.y * ppp).max(0.0),
                (clip_rect.max.x * ppp).min(w as f32),
                (clip_rect.max.y * ppp).min(h as f32),
            ];
            for tri in mesh.indices.chunks_exact(3) {
                let v = [0, 1, 2].map(|k| mesh.vertices[tri[k] as usize]);
                triangle(&mut target, w, clip, ppp, &v, texture);
            }
        }
        let bytes = target
            .iter()
            .flat_map(|p| p.map(|c| (c * 255.0).round().clamp(0.0, 255.0) as u8))
            .collect();
        image::RgbaImage::from_raw(w as u32, h as u32, bytes)
            .ok_or_else(|| "the rendered image has the wrong size".to_string())
    }
}

/// Rasterises one triangle: pixel centres inside it (top-left rule) take the interpolated vertex
/// colour times the texture sample, blended "over" with premultiplied alpha.
fn triangle(
    target: &mut [[f32; 4]],
    w: usize,
    clip: [f32; 4],
    ppp: f32,
    v: &[Vertex; 3],
    texture: &Texture,
) {
    let p = v.map(|v| (v.pos.x * ppp, v.pos.y * ppp));
    let area = edge(p[0], p[1], p[2]);
    if area.abs() < 1e-12 {
        return;
    }
    let x0 = p.iter().map(|q| q.0).fold(f32::MAX, f32::min).max(clip[0]);
    let x1 = p.iter().map(|q| q.0).fold(f32::MIN, f32::max).min(clip[2]);
    let y0 = p.iter().map(|q| q.1).fold(f32::MAX, f32::min).max(clip[1]);
    let y1 = p.iter().map(|q| q.1).fold(f32::MIN, f32::max).min(clip[3]);
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let colours = v.map(|v| rgba(v.color));
    for y in (y0.floor() as usize)..(y1.ceil() as usize) {
        let cy = y as f32 + 0.5;
        if cy < clip[1] || cy >= clip[3] {
            continue;
        }
        for x in (x0.floor() as usize)..(x1.ceil() as usize) {
            let cx = x as f32 + 0.5;
            if cx < clip[0] || cx >= clip[2] {
                continue;
            }
            let c = (cx, cy);
            let b = [
                edge(p[1], p[2], c) / area,
                edge(p[2], p[0], c) / area,
                edge(p[0], p[1], c) / area,
            ];
            if b.iter().any(|b| *b < 0.0) {
                continue;
            }
            let u = b[0] * v[0].uv.x + b[1] * v[1].uv.x + b[2] * v[2].uv.x;
            let t = b[0] * v[0].uv.y + b[1] * v[1].uv.y + b[2] * v[2].uv.y;
            let tex = sample(texture, u, t);
            let mut src = [0f32; 4];
            for k in 0..4 {
                src[k] =
                    (b[0] * colours[0][k] + b[1] * colours[1][k] + b[2] * colours[2][k]) * tex[k];
            }
            let dst = &mut target[y * w + x];
            for k in 0..4 {
                dst[k] = src[k] + dst[k] * (1.0 - src[3]);
            }
        }
    }
}

fn edge(a: (f32, f32), b: (f32, f32), c: (f32, f32)) -> f32 {
    (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)
}

fn rgba(c: Color32) -> [f32; 4] {
    c.to_array().map(|v| f32::from(v) / 255.0)
}

/// The texture at normalised (u, v), clamped at the edges.
fn sample(texture: &Texture, u: f32, v: f32) -> [f32; 4] {
    let [tw, th] = texture.image.size;
    let texel = |x: isize, y: isize| {
        let x = x.clamp(0, tw as isize - 1) as usize;
        let y = y.clamp(0, th as isize - 1) as usize;
        rgba(texture.image.pixels[y * tw + x])
    };
    let (fx, fy) = (u * tw as f32 - 0.5, v * th as f32 - 0.5);
    if texture.options.magnification == TextureFilter::Nearest {
        return texel(fx.round() as isize, fy.round() as isize);
    }
    let (ix, iy) = (fx.floor(), fy.floor());
    let (ax, ay) = (fx - ix, fy - iy);
    let (ix, iy) = (ix as isize, iy as isize);
    let (a, b, c, d) = (
        texel(ix, iy),
        texel(ix + 1, iy),
        texel(ix, iy + 1),
        texel(ix + 1, iy + 1),
    );
    let mut out = [0f32; 4];
    for k in 0..4 {
        out[k] =
            (a[k] * (1.0 - ax) + b[k] * ax) * (1.0 - ay) + (c[k] * (1.0 - ax) + d[k] * ax) * ay;
    }
    out
}
