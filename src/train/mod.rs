//! Training loops for the models shipped with clipscope.

pub mod clip;
pub mod data;
pub mod dcsm;
pub mod smartclip;
