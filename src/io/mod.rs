//! Reading what a model is made of: weights, model sources (folders, the hub, the embedded
//! default), the tokenizer and image preprocessing.

pub mod preprocess;
pub mod source;
pub mod tokenizer;
pub mod weights;
