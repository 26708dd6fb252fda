//! clipscope: where a CLIP model thinks each word of a prompt is in an image.
//!
//! The engine (`model`, `dcsm`, `smartclip`, `worker`, `render`) knows nothing of the UI; the `app` knows
//! nothing of candle and talks to the engine only through the worker's `Job`/`Event` enums.

pub mod alloc;
#[cfg(feature = "gui")]
pub mod app;
pub mod atomic;
pub mod cli;
pub mod clip;
pub mod dcsm;
pub mod engine;
pub mod error;
pub mod eval;
pub mod io;
pub mod render;
pub mod smartclip;
pub mod train;
mod transpose;
pub mod worker;
pub mod world;
