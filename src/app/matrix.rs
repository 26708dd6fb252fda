//! The whole DCSM as an egui_plot heatmap, hover-linked to the image beside it.

use egui_plot::{Heatmap, Plot, PlotPoint, PlotPoints, Polygon};

use super::command::{Command, Commands};
use super::textures::MapView;
use super::{colour, heatmap, ClipscopeApp};

pub fn show(app: &mut ClipscopeApp, ui: &mut egui::Ui) -> Commands {
    let mut out = heatmap::token_chips(app, ui);
    let Some(score) = app.score_of(app.selection.prompt).cloned() else {
        ui.weak("no matrix yet");
        return out;
    };
    let Some((tex, info)) = app.current_view() else {
        return out;
    };
    let m = &score.dcsm;
    let scale = match app.settings.scale {
        super::state::ScaleMode::Locked => app.locked_scale(),
        super::state::ScaleMode::PerMap => crate::render::Scale::span(&m.data),
    };
    colour::colour_bar(
        ui,
        scale,
        &if m.cls_row {
            format!("{} image rows (CLS + patches) × {} tokens", m.rows, m.cols)
        } else {
            format!(
                "{} image rows (patches, no CLS) × {} tokens",
                m.rows, m.cols
            )
        },
    );
    let labels = score.tokenized.labels.clone();
    let cols = m.cols;
    let functional: Vec<usize> = score
        .functional
        .iter()
        .map(|r| r.column)
        .filter(|c| *c < cols)
        .collect();
    if !functional.is_empty() {
        let words: Vec<String> = score.functional.iter().map(|r| r.word.clone()).collect();
        ui.colored_label(
            heatmap::FUNCTIONAL,
            format!(
                "ƒ outlined columns: the DCSM scorer replaces them with fixed vectors ({})",
                words.join(", ")
            ),
        );
    }
    let avail = ui.available_size();
    let plot_width = (avail.x * 0.62).max(200.0);
    ui.horizontal_top(|ui| {
        let values: Vec<f64> = m.data.iter().map(|v| f64::from(*v)).collect();
        let map = Heatmap::new(values, cols)
            .custom_mapping(Box::new(move |v| colour::colour(scale, v as f32)))
            .at(PlotPoint::new(0.0, 0.0))
            .show_labels(false)
            .name("DCSM");
        let label_names: Vec<String> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if functional.contains(&i) {
                    format!("{l} ƒ")
                } else {
                    l.clone()
                }
            })
            .collect();
        let rows = m.rows as f64;
        let outlines: Vec<Polygon> = functional
            .iter()
            .map(|&c| {
                let (x0, x1) = (c as f64, c as f64 + 1.0);
                Polygon::new(
                    format!("functional column {c}"),
                    PlotPoints::new(vec![[x0, 0.0], [x1, 0.0], [x1, rows], [x0, rows]]),
                )
                .fill_color(egui::Color32::TRANSPARENT)
                .stroke(egui::Stroke::new(2.0, heatmap::FUNCTIONAL))
            })
            .collect();
        let response = Plot::new("dcsm matrix")
            .width(plot_width)
            .height(avail.y - 10.0)
            .invert_y(true)
            .show_grid(false)
            .allow_zoom(true)
            .x_axis_label("token")
            .y_axis_label(if m.cls_row {
                "image row (0 = CLS, then patches row by row)"
            } else {
                "image row (patches row by row; SigLIP has no CLS)"
            })
            .x_axis_formatter(move |mark, _| {
                // Token i's tile spans [i, i + 1]: its name sits at the tile's left edge.
                let i = mark.value;
                if i.fract().abs() < 1e-6 && i >= 0.0 {
                    label_names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .label_formatter(|_| None::<String>)
            .show(ui, |plot| {
                plot.heatmap(map);
                for o in outlines {
                    plot.polygon(o);
                }
            });
        if let Some(p) = response
            .response
            .hover_pos()
            .map(|pos| response.transform.value_from_position(pos))
        {
            let (col, row) = (p.x.floor(), p.y.floor());
            if col >= 0.0 && row >= 0.0 && (col as usize) < cols && (row as usize) < m.rows {
                let (col, row) = (col as usize, row as usize);
                out.push(Command::SelectToken(col));
                let first = m.first_patch_row();
                if row >= first {
                    out.push(Command::HoverPatch(row - first));
                }
                let text = format!(
                    "row {row} ({}), token {col} `{}`: {:+.4}",
                    if row < first {
                        "CLS".to_string()
                    } else {
                        format!("patch {}", row - first + 1)
                    },
                    labels[col],
                    m.get(row, col)
                );
                response.response.on_hover_text(text);
            }
        }
        ui.vertical(|ui| {
            let side = (avail.x - plot_width - 20.0).clamp(120.0, avail.y - 40.0);
            let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
            let crop = heatmap::crop_only(ui, &tex, rect, &info);
            let t = app.selected_token().min(cols - 1);
            heatmap::paint_token(app, ui, MapView::Matrix, &score, t, &info, crop);
            if let Some(p) = app.selection.hovered_patch {
                heatmap::outline_patch(ui, crop, info.grid, p);
            }
            ui.label(format!("token `{}` on the crop the model saw", labels[t]));
        });
    });
    out
}
