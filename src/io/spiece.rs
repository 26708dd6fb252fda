//! SentencePiece tokenizers as SigLIP reads them: `spiece.model` (the protobuf `ModelProto`, a
//! Unigram model) turned into a `tokenizers` model, and `SiglipTokenizer`'s text
//! canonicalisation (lower case, ASCII punctuation removed, whitespace collapsed).

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::precompiled::Precompiled;
use tokenizers::normalizers::unicode::NFKC;
use tokenizers::{NormalizedString, Normalizer, Tokenizer};

use crate::error::ModelError;

/// The pieces of a SentencePiece model: (piece, score, type) in id order, and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SpModel {
    pub pieces: Vec<(String, f32, PieceType)>,
    /// `trainer_spec.model_type`: 1 Unigram, 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    /// `normalizer_spec.name` (`nmt_nfkc`, `nfkc`, `identity`, …).
    pub normalizer: String,
    /// `normalizer_spec.precompiled_charsmap`: the normalisation table SentencePiece itself
    /// applies (empty for `identity`).
    pub charsmap: Vec<u8>,
    pub byte_fallback: bool,
}

/// `SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_wire(v: u64) -> Self {
        match v {
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            5 => Self::Unused,
            6 => Self::Byte,
            _ => Self::Normal,
        }
    }
}

/// A protobuf reader of just what `ModelProto` needs: varints, fixed32 and length-delimited
/// fields (other wire types are skipped).
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Wire<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// The next (field number, value), `None` at the end, `Err` on a malformed message.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, ()> {
        if self.at >= self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint().ok_or(())?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint().ok_or(())?),
            1 => {
                self.take(8).ok_or(())?;
                Field::Other
            }
            2 => {
                let n = self.varint().ok_or(())? as usize;
                Field::Bytes(self.take(n).ok_or(())?)
            }
            5 => {
                let b = self.take(4).ok_or(())?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            _ => return Err(()),
        };
        Ok(Some((key >> 3, field)))
    }
}

/// Reads a serialised `ModelProto` (`spiece.model`).
pub fn read_model(bytes: &[u8]) -> Result<SpModel, ModelError> {
    let bad = || ModelError::Tokenizer("spiece.model is not a SentencePiece model".into());
    let mut model = SpModel {
        pieces: Vec::new(),
        model_type: 1,
        normalizer: "nmt_nfkc".into(),
        charsmap: Vec::new(),
        byte_fallback: false,
    };
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.next().map_err(|()| bad())? {
        match (number, field) {
            (1, Field::Bytes(piece)) => model.pieces.push(read_piece(piece).ok_or_else(bad)?),
            (2, Field::Bytes(spec)) => {
                let mut w = Wire::new(spec);
                while let Some((n, f)) = w.next().map_err(|()| bad())? {
                    match (n, f) {
                        (3, Field::Varint(v)) => model.model_type = v,
                        (35, Field::Varint(v)) => model.byte_fallback = v != 0,
                        _ => {}
                    }
                }
            }
            (3, Field::Bytes(spec)) => {
                let mut w = Wire::new(spec);
                while let Some((n, f)) = w.next().map_err(|()| bad())? {
                    match (n, f) {
                        (1, Field::Bytes(name)) => {
                            model.normalizer = String::from_utf8_lossy(name).into_owned();
                        }
                        (2, Field::Bytes(map)) => model.charsmap = map.to_vec(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if model.pieces.is_empty() {
        return Err(bad());
    }
    Ok(model)
}

fn read_piece(bytes: &[u8]) -> Option<(String, f32, PieceType)> {
    let mut w = Wire::new(bytes);
    let (mut piece, mut score, mut kind) = (None, 0.0, PieceType::Normal);
    while let Some((n, f)) = w.next().ok()? {
        match (n, f) {
            (1, Field::Bytes(b)) => piece = Some(String::from_utf8(b.to_vec()).ok()?),
            (2, Field::Fixed32(bits)) => score = f32::from_bits(bits),
            (3, Field::Varint(v)) => kind = PieceType::from_wire(v),
            _ => {}
        }
    }
    Some((piece?, score, kind))
}

/// SentencePiece's normalisation: its precompiled table (as transformers' converters use it),
/// NFKC for an `nfkc` rule without one, or nothing; then `remove_extra_whitespaces`.
#[derive(Debug, Clone)]
pub enum SpNormalizer {
    Table(Box<Precompiled>),
    Nfkc,
    Identity,
}

impl SpNormalizer {
    pub fn of(model: &SpModel) -> Result<Self, ModelError> {
        if !model.charsmap.is_empty() {
            let table = Precompiled::from(&model.charsmap)
                .map_err(|e| ModelError::Tokenizer(format!("spiece.model normaliser: {e}")))?;
            Ok(Self::Table(Box::new(table)))
        } else if model.normalizer.contains("nfkc") {
            Ok(Self::Nfkc)
        } else {
            Ok(Self::Identity)
        }
    }

    /// The text as SentencePiece normalises it, spaces still spaces: mapped, then runs of
    /// spaces made one and the ends stripped.
    pub fn apply(&self, text: &str) -> Result<String, ModelError> {
        let mut n = NormalizedString::from(text);
        let done = match self {
            Self::Table(t) => t.normalize(&mut n),
            Self::Nfkc => NFKC.normalize(&mut n),
            Self::Identity => Ok(()),
        };
        done.map_err(|e| ModelError::Tokenizer(format!("normalising text: {e}")))?;
        Ok(n.get()
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" "))
    }
}

/// A `tokenizers` Unigram model of a SentencePiece model, with no normaliser or pre-tokenizer:
/// the caller normalises (`SpNormalizer`) and escapes spaces as `▁`, and SentencePiece segments
/// whole strings.
pub fn to_tokenizer(model: &SpModel) -> Result<Tokenizer, ModelError> {
    if model.model_type != 1 {
        return Err(ModelError::Tokenizer(format!(
            "spiece.model is a SentencePiece model of type {} (only Unigram, type 1, as SigLIP's)",
            model.model_type
        )));
    }
    let vocab: Vec<(String, f64)> = model
        .pieces
        .iter()
        .map(|(p, s, _)| (p.clone(), f64::from(*s)))
        .collect();
    let unk = model
        .pieces
        .iter()
        .position(|(_, _, t)| *t == PieceType::Unknown);
    let unigram = Unigram::from(vocab, unk, model.byte_fallback)
        .map_err(|e| ModelError::Tokenizer(format!("spiece.model: {e}")))?;
    Ok(Tokenizer::new(unigram))
}

/// `SiglipTokenizer.canonicalize_text`: lower case, Python's `string.punctuation` removed,
/// runs of whitespace made one space, stripped.
pub fn canonicalize(text: &str) -> String {
    let lowered = text.to_lowercase();
    let kept: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_as_siglip_writes_it() {
        assert_eq!(
            canonicalize("  A Dog,\twithout a COLLAR!! "),
            "a dog without a collar"
        );
        assert_eq!(canonicalize("?!."), "");
        assert_eq!(canonicalize("café — naïve"), "café — naïve");
    }

    #[test]
    fn malformed_protobuf_is_refused() {
        assert!(read_model(&[0x0a, 0x05, 0x01]).is_err());
        assert!(read_model(&[]).is_err());
    }

    #[test]
    fn pieces_and_settings_are_read() {
        // ModelProto { pieces: [{piece: "<unk>", score: 0, type: 2}, {piece: "▁a", score: -1.5}],
        //              trainer_spec: {model_type: 1}, normalizer_spec: {name: "identity"} }
        let mut bytes = vec![0x0a, 0x0e, 0x0a, 0x05];
        bytes.extend(b"<unk>");
        bytes.extend([0x15, 0, 0, 0, 0, 0x18, 0x02]);
        let piece = "▁a".as_bytes();
        bytes.extend([0x0a, (2 + piece.len() + 5) as u8, 0x0a, piece.len() as u8]);
        bytes.extend(piece);
        bytes.push(0x15);
        bytes.extend((-1.5f32).to_le_bytes());
        bytes.extend([0x12, 0x02, 0x18, 0x01]);
        bytes.extend([0x1a, 0x0a, 0x0a, 0x08]);
        bytes.extend(b"identity");
        let m = read_model(&bytes).unwrap();
        assert_eq!(m.pieces.len(), 2);
        assert_eq!(m.pieces[0], ("<unk>".to_string(), 0.0, PieceType::Unknown));
        assert_eq!(m.pieces[1].0, "▁a");
        assert_eq!(m.pieces[1].1, -1.5);
        assert_eq!((m.model_type, m.normalizer.as_str()), (1, "identity"));
        let t = to_tokenizer(&m).unwrap();
        assert_eq!(t.token_to_id("▁a"), Some(1));
    }
}
