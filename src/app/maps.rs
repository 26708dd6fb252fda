//! The map controls: which source the maps come from, CLIP Surgery, resolution, whole image.

use super::ClipscopeApp;
use crate::engine::MapSource;

/// How the maps are made: source, surgery, resolution, tiles. Changes re-score.
pub fn controls(app: &mut ClipscopeApp, ui: &mut egui::Ui) {
    let before = app.settings.maps;
    let layers = app.model.info.as_ref().map_or(0, |i| i.vision_layers);
    let native = app.model.info.as_ref().map_or(224, |i| i.image_size as u32);
    let patch = app
        .model
        .info
        .as_ref()
        .map_or(16, |i| (i.image_size / i.grid.0.max(1)) as u32);
    let shown = app.current_shown().map(|s| {
        let (r, c) = s.results.map_grid;
        format!("shown: {}, {r}×{c}", s.results.view.label())
    });
    let clip = app.family() == crate::engine::Family::Clip;
    let maps = &mut app.settings.maps;
    ui.horizontal(|ui| {
        ui.label("maps:");
        if !clip {
            ui.add_enabled(
                false,
                egui::Label::new("SigLIP: the head's dense path, at the model's own size"),
            )
            .on_disabled_hover_text(
                "Map sources, CLIP Surgery, other resolutions and tiles are built on a CLIP \
                 vision tower (its CLS token and last block). SigLIP's patch tokens go through \
                 its attention-pooling head's value, output and MLP path instead (see README).",
            );
            if let Some(shown) = &shown {
                ui.weak(shown);
            }
            return;
        }
        egui::ComboBox::from_id_salt("map source")
            .selected_text(maps.source.to_string())
            .show_ui(ui, |ui| {
                for s in MapSource::all(layers) {
                    ui.selectable_value(&mut maps.source, s, s.to_string())
                        .on_hover_text(s.explain());
                }
            })
            .response
            .on_hover_text(format!(
                "Where the map's image tokens come from: {}.\nScores always read the raw tokens.",
                maps.source.explain()
            ));
        ui.checkbox(&mut maps.surgery, "surgery").on_hover_text(
            "CLIP Surgery (Li et al., 2023): subtract from every patch what all the prompts \
             share, weighted by the image's own scores. Needs two or more prompts.",
        );
        let label = |r: Option<u32>| match r {
            None => format!("{native} px (model)"),
            Some(r) => format!("{r} px ({0}×{0})", r / patch.max(1)),
        };
        egui::ComboBox::from_id_salt("map resolution")
            .selected_text(label(maps.resolution))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut maps.resolution, None, label(None));
                for r in [native * 3 / 2, native * 2] {
                    let r = r / patch.max(1) * patch.max(1);
                    ui.selectable_value(&mut maps.resolution, Some(r), label(Some(r)));
                }
            })
            .response
            .on_hover_text(
                "Input side for the maps, position embeddings interpolated as transformers does: \
                 finer patches, slower encodes. Scores stay at the model's size.",
            );
        ui.checkbox(&mut maps.tiles, "whole image").on_hover_text(
            "Slide windows with half overlap over the image resized by its shortest side and \
             average their maps: the map covers the whole picture, not just the centre crop",
        );
        if let Some(shown) = shown {
            ui.weak(shown);
        }
    });
    if clip
        && app.settings.maps.surgery
        && app.prompts.iter().filter(|p| !p.trim().is_empty()).count() < 2
    {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "surgery needs two or more prompts: with one it subtracts the prompt from itself",
        );
    }
    if app.settings.maps != before {
        app.mark_dirty();
    }
}
