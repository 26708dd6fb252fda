//! Heat-map textures cached by typed keys (what a texture shows and how it is drawn), dropped when
//! the results change.

use std::collections::HashMap;

use super::state::ScaleMode;
use crate::render::Scale;
use crate::worker::ImageId;

/// The view a token map is drawn in (each draws at its own size, so each has its own texture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapView {
    Overlay,
    Grid,
    Matrix,
}

/// A pane of the compare view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    A,
    B,
    /// A − B.
    Difference,
}

/// Which map a texture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapKey {
    /// Token `token` of prompt `prompt` (an index into the prompt list) on image `image`.
    Token {
        view: MapView,
        image: ImageId,
        prompt: usize,
        token: usize,
    },
    /// A compare pane for prompts `a` and `b` at their tokens `ta` and `tb`.
    Compare {
        pane: Pane,
        image: ImageId,
        a: usize,
        b: usize,
        ta: usize,
        tb: usize,
    },
}

/// A texture's full key: the map and how it is coloured and filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextureKey {
    pub map: MapKey,
    pub smooth: bool,
    pub scale_mode: ScaleMode,
    /// The colour scale's ends, bit for bit: another range is another texture.
    pub scale_bits: (u32, u32),
}

impl TextureKey {
    pub fn new(map: MapKey, smooth: bool, scale_mode: ScaleMode, scale: Scale) -> Self {
        Self {
            map,
            smooth,
            scale_mode,
            scale_bits: (scale.lo.to_bits(), scale.hi.to_bits()),
        }
    }
}

/// The textures of the maps on screen.
#[derive(Default)]
pub struct TextureCache {
    textures: HashMap<TextureKey, egui::TextureHandle>,
}

impl TextureCache {
    /// The texture for `key`, made by `make` and uploaded when missing.
    pub fn get_or_make(
        &mut self,
        ctx: &egui::Context,
        key: TextureKey,
        make: impl FnOnce() -> (egui::ColorImage, egui::TextureOptions),
    ) -> egui::TextureHandle {
        self.textures
            .entry(key)
            .or_insert_with(|| {
                let (image, options) = make();
                ctx.load_texture(format!("{key:?}"), image, options)
            })
            .clone()
    }

    /// New results or a new model: every map texture is stale.
    pub fn clear(&mut self) {
        self.textures.clear();
    }
}
