//! Reads a safetensors file one tensor at a time, so loading never holds the whole file in memory.
//! Every weight file clipscope opens (models, scorers, SmartCLIP masks) goes through here.
//!
//! candle's memory-mapped loader keeps every page it has touched resident until the model is
//! built, so a model's peak memory was its weights twice over (the map and the tensors). Here each
//! tensor is read with one positioned read and converted; the file's pages stay in the page cache
//! and out of the process's resident set.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use serde::Deserialize;

/// Largest header accepted (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

#[derive(Debug, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

#[derive(Debug)]
pub(crate) struct FileWeights {
    file: Mutex<File>,
    /// Where the tensor data starts: after the 8-byte length and the JSON header.
    data_start: u64,
    entries: HashMap<String, (DType, Vec<usize>, u64, u64)>,
}

fn dtype_of(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "U8" => DType::U8,
        "U32" => DType::U32,
        _ => return None,
    })
}

/// A `VarBuilder` over `path` that reads each tensor when it is asked for, converted to `dtype`.
pub fn var_builder(
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, crate::error::ModelError> {
    let backend = FileWeights::open(path).map_err(|message| crate::error::ModelError::File {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(VarBuilder::from_backend(
        Box::new(backend),
        dtype,
        device.clone(),
    ))
}

impl FileWeights {
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let mut file = File::open(path).map_err(|e| e.to_string())?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        let mut len = [0u8; 8];
        file.read_exact(&mut len)
            .map_err(|_| "too short to be safetensors".to_string())?;
        let header_len = u64::from_le_bytes(len);
        if header_len > MAX_HEADER || 8 + header_len > size {
            return Err(format!(
                "not safetensors: a header of {header_len} bytes in a file of {size}"
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(|e| e.to_string())?;
        let raw: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|e| format!("bad safetensors header: {e}"))?;
        let data_start = 8 + header_len;
        let mut entries = HashMap::new();
        for (name, value) in raw {
            if name == "__metadata__" {
                continue;
            }
            let e: Entry = serde_json::from_value(value)
                .map_err(|err| format!("bad safetensors entry {name}: {err}"))?;
            let dtype = dtype_of(&e.dtype)
                .ok_or_else(|| format!("{name}: unsupported dtype {}", e.dtype))?;
            let [start, end] = e.data_offsets;
            let bytes = e.shape.iter().product::<usize>() as u64 * dtype.size_in_bytes() as u64;
            if end < start || end - start != bytes || data_start + end > size {
                return Err(format!(
                    "{name}: data offsets {start}..{end} do not fit its shape {:?} or the file",
                    e.shape
                ));
            }
            entries.insert(name, (dtype, e.shape, start, end));
        }
        Ok(Self {
            file: Mutex::new(file),
            data_start,
            entries,
        })
    }

    pub(crate) fn read(
        &self,
        name: &str,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let (stored, shape, start, end) = self
            .entries
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.into() })?;
        let len = (end - start) as usize;
        let mut file = self
            .file
            .lock()
            .map_err(|_| candle_core::Error::Msg("weights file lock poisoned".into()))?;
        file.seek(SeekFrom::Start(self.data_start + start))?;
        if *stored == DType::F32 && cfg!(target_endian = "little") {
            // Read straight into the tensor's own buffer: no second copy of the bytes.
            let mut values = vec![0f32; len / 4];
            file.read_exact(bytemuck::cast_slice_mut(&mut values))?;
            return Tensor::from_vec(values, shape.as_slice(), device)?.to_dtype(dtype);
        }
        let mut bytes = vec![0u8; len];
        file.read_exact(&mut bytes)?;
        Tensor::from_raw_buffer(&bytes, *stored, shape, device)?.to_dtype(dtype)
    }
}

/// `tensor` when it has the shape a layer asks for, else candle's shape error naming `what`.
pub(crate) fn expect_shape(tensor: Tensor, s: Shape, what: &str) -> candle_core::Result<Tensor> {
    if tensor.shape() != &s {
        return Err(candle_core::Error::UnexpectedShape {
            msg: format!("shape mismatch for {what}"),
            expected: s,
            got: tensor.shape().clone(),
        }
        .bt());
    }
    Ok(tensor)
}

impl SimpleBackend for FileWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        expect_shape(self.read(name, dtype, dev)?, s, name)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.read(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_candle_wrote_and_checks_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = Tensor::arange(0f32, 6., &Device::Cpu)
            .unwrap()
            .reshape((2, 3))
            .unwrap();
        let b = Tensor::new(&[1.5f32, -2.0], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        candle_core::safetensors::save(
            &HashMap::from([("a".to_string(), a.clone()), ("b".to_string(), b)]),
            &path,
        )
        .unwrap();
        let vb = var_builder(&path, DType::F32, &Device::Cpu).unwrap();
        let got = vb.get((2, 3), "a").unwrap();
        assert_eq!(got.to_vec2::<f32>().unwrap(), a.to_vec2::<f32>().unwrap());
        assert_eq!(
            vb.get(2, "b").unwrap().to_vec1::<f32>().unwrap(),
            [1.5, -2.0]
        );
        assert!(vb.get((3, 2), "a").is_err(), "wrong shape accepted");
        assert!(vb.get(2, "missing").is_err());
    }

    #[test]
    fn refuses_truncated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = Tensor::zeros((64, 64), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("a".to_string(), a)]), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let Err(err) = var_builder(&path, DType::F32, &Device::Cpu) else {
            panic!("a truncated file loaded");
        };
        assert!(err.to_string().contains("do not fit"), "{err}");
        std::fs::write(&path, &bytes[..20]).unwrap();
        assert!(var_builder(&path, DType::F32, &Device::Cpu).is_err());
    }
}
