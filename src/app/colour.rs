//! Colours for the UI: the diverging map as egui colours, heat textures and the colour bar.

use crate::render::{diverging, Scale};

pub fn colour(scale: Scale, v: f32) -> egui::Color32 {
    let [r, g, b] = diverging(scale.unit(v));
    egui::Color32::from_rgb(r, g, b)
}

/// A `cols × rows` texture image of a patch map (drawn stretched over the crop).
pub fn heat_image(map: &[f32], grid: (usize, usize), scale: Scale) -> egui::ColorImage {
    let (rows, cols) = grid;
    let pixels = map
        .iter()
        .take(rows * cols)
        .map(|v| colour(scale, *v))
        .collect();
    egui::ColorImage::new([cols, rows], pixels)
}

/// A horizontal colour bar with its numbers.
pub fn colour_bar(ui: &mut egui::Ui, scale: Scale, label: &str) {
    ui.horizontal(|ui| {
        ui.label(format!("{:+.3}", scale.lo));
        let (rect, response) =
            ui.allocate_exact_size(egui::vec2(180.0, 14.0), egui::Sense::hover());
        let painter = ui.painter_at(rect);
        let steps = 60;
        for i in 0..steps {
            let t0 = i as f32 / steps as f32;
            let x0 = rect.left() + rect.width() * t0;
            let x1 = rect.left() + rect.width() * (i + 1) as f32 / steps as f32;
            let v = scale.lo + (scale.hi - scale.lo) * (t0 + 0.5 / steps as f32);
            painter.rect_filled(
                egui::Rect::from_x_y_ranges(x0..=x1 + 0.5, rect.y_range()),
                0.0,
                colour(scale, v),
            );
        }
        let zero = rect.left() + rect.width() * scale.unit(0.0);
        painter.line_segment(
            [
                egui::pos2(zero, rect.top()),
                egui::pos2(zero, rect.bottom()),
            ],
            (1.0, egui::Color32::BLACK),
        );
        response.on_hover_text(
            "cosine similarity between a patch and a token: blue below zero, red above",
        );
        ui.label(format!("{:+.3}", scale.hi));
        ui.weak(label);
    });
}
