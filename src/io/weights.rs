//! Reads a safetensors file one tensor at a time, so loading never holds the whole file in memory.
//! Every weight file clipscope opens (models, scorers, SmartCLIP masks) goes through here.
//!
//! candle's memory-mapped loader keeps every page it has touched resident until the model is
//! built, so a model's peak memory was its weights twice over (the map and the tensors). Here each
//! tensor is read with one positioned read and converted, or, for a weight read as its transpose,
//! mapped only while it is transposed; the file's pages stay in the page cache and out of the
//! process's resident set.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
#[cfg(not(unix))]
use std::io::{Seek, SeekFrom};
use std::path::Path;

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
    file: File,
    /// Where the tensor data starts: after the 8-byte length and the JSON header.
    data_start: u64,
    entries: HashMap<String, (DType, Vec<usize>, u64, u64)>,
    /// Names of the 2-D f32 weights to read as the transpose of a contiguous (cols, rows)
    /// buffer (`read_transposed`): a layer that keeps its weight transposed then has nothing to do.
    transposed: fn(&str) -> bool,
    /// The heap grows in long steps while the weights are read (`alloc::LoadPad`).
    _pad: crate::alloc::LoadPad,
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
    var_builder_transposing(path, dtype, device, |_| false)
}

/// As `var_builder`, with every 2-D f32 weight whose name `transposed` picks handed out as the
/// layers keep it (`read_transposed`): as panels, a (rows / PANEL, cols, PANEL) tensor, where its
/// rows (the layer's outputs) are a multiple of `transpose::PANEL`, else as a transposed view of
/// its contiguous transpose.
pub fn var_builder_transposing(
    path: &Path,
    dtype: DType,
    device: &Device,
    transposed: fn(&str) -> bool,
) -> Result<VarBuilder<'static>, crate::error::ModelError> {
    let mut backend =
        FileWeights::open(path).map_err(|message| crate::error::ModelError::File {
            path: path.to_path_buf(),
            message,
        })?;
    backend.transposed = transposed;
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
            file,
            data_start,
            entries,
            transposed: |_| false,
            _pad: crate::alloc::LoadPad::new(),
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
        let at = self.data_start + start;
        if *stored == DType::F32 && cfg!(target_endian = "little") {
            if let ([rows, cols], true) = (shape.as_slice(), (self.transposed)(name)) {
                let (rows, cols) = (*rows, *cols);
                let panel = crate::transpose::PANEL;
                if rows % panel == 0 {
                    let values = read_transposed(&self.file, at, rows, cols, true)?;
                    return Tensor::from_vec(values, (rows / panel, cols, panel), device)?
                        .to_dtype(dtype);
                }
                let values = read_transposed(&self.file, at, rows, cols, false)?;
                return Tensor::from_vec(values, (cols, rows), device)?
                    .t()?
                    .to_dtype(dtype);
            }
            // Read straight into the tensor's own buffer: no second copy of the bytes.
            let values = read_f32s(&self.file, at, len / 4)?;
            return Tensor::from_vec(values, shape.as_slice(), device)?.to_dtype(dtype);
        }
        let mut bytes = vec![0u8; len];
        read_exact_at(&self.file, &mut bytes, at)?;
        Tensor::from_raw_buffer(&bytes, *stored, shape, device)?.to_dtype(dtype)
    }
}

/// The (rows, cols) little-endian f32 matrix at byte `at` of `file` as its contiguous transpose
/// (cols × rows values), or with `panels` as `transpose::panelled` lays it out (rows a multiple
/// of `transpose::PANEL`). The tensor's bytes are mapped from the page cache for the time of the
/// transpose and written out once (`crate::transpose`), without a copy in between; where
/// the file cannot be mapped or the data is not 4-byte aligned, they are read into a buffer first.
fn read_transposed(
    file: &File,
    at: u64,
    rows: usize,
    cols: usize,
    panels: bool,
) -> std::io::Result<Vec<f32>> {
    let n = rows * cols;
    if n == 0 {
        return Ok(Vec::new());
    }
    let page = 4096;
    let skip = (at % page) as usize;
    let options = {
        let mut o = memmap2::MmapOptions::new();
        o.offset(at - skip as u64).len(skip + n * 4).populate();
        o
    };
    // SAFETY: the map is private and read-only, and lives only for this function. Another
    // process truncating the file meanwhile could fault the read (as with any mapped file);
    // clipscope writes model files whole, under a new name, and renames them into place.
    let mapped = unsafe { options.map(file) };
    let aligned = mapped
        .as_ref()
        .ok()
        .and_then(|map| bytemuck::try_cast_slice::<u8, f32>(&map[skip..skip + n * 4]).ok());
    let lay_out = |src: &[f32]| match panels {
        true => crate::transpose::panelled(src, rows, cols)
            .ok_or_else(|| std::io::Error::other(format!("{rows} rows do not make whole panels"))),
        false => Ok(crate::transpose::transposed(src, rows, cols)),
    };
    match aligned {
        Some(src) => lay_out(src),
        None => lay_out(&read_f32s(file, at, n)?),
    }
}

/// `n` little-endian f32s read from `file` at byte `at`, into memory that is not zero-filled
/// first (at B/16 the fill cost a tenth of a load).
#[cfg(unix)]
fn read_f32s(file: &File, at: u64, n: usize) -> std::io::Result<Vec<f32>> {
    use std::os::fd::AsRawFd;
    let mut values: Vec<f32> = crate::alloc::f32_capacity(n);
    let want = n * 4;
    let mut done = 0usize;
    while done < want {
        let offset = libc::off_t::try_from(at + done as u64)
            .map_err(|_| std::io::Error::other("tensor offset past the largest file offset"))?;
        // SAFETY: the kernel writes at most `want - done` bytes into the vector's spare capacity,
        // which holds `want` bytes from its start; nothing reads them until `set_len` below.
        let got = unsafe {
            let into = values.as_mut_ptr().cast::<u8>().add(done);
            libc::pread(file.as_raw_fd(), into.cast(), want - done, offset)
        };
        match got {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            g if g < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            g => done += g as usize,
        }
    }
    // SAFETY: all `want` bytes, i.e. all `n` values, were written by the reads above.
    unsafe { values.set_len(n) };
    Ok(values)
}

#[cfg(not(unix))]
fn read_f32s(file: &File, at: u64, n: usize) -> std::io::Result<Vec<f32>> {
    let mut values = vec![0f32; n];
    read_exact_at(file, bytemuck::cast_slice_mut(&mut values), at)?;
    Ok(values)
}

/// Fills `buf` from `file` at byte `at`.
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
    }
    #[cfg(not(unix))]
    {
        let mut file = file;
        file.seek(SeekFrom::Start(at))?;
        file.read_exact(buf)
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
        let tensor = self.read(name, dtype, dev)?;
        // A picked weight of whole panels comes as (rows / PANEL, cols, PANEL) for (rows, cols).
        if let ([p, cols, w], [rows, c]) = (tensor.dims(), s.dims()) {
            if (self.transposed)(name) && p * w == *rows && cols == c {
                return Ok(tensor);
            }
        }
        expect_shape(tensor, s, name)
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
    fn picked_weights_come_out_as_views_of_their_transpose() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        // 700 × 500 f32 is 1.4 MB, transposed on two threads. Then one row, one column, and an
        // f16 weight, which is read the plain way.
        let shapes = [
            ("big.weight", (700, 500)),
            ("row.weight", (1, 9)),
            ("col.weight", (9, 1)),
        ];
        let mut tensors = HashMap::new();
        for (name, (r, c)) in shapes {
            let t = Tensor::randn(0f32, 1.0, (r, c), &Device::Cpu).unwrap();
            tensors.insert(name.to_string(), t);
        }
        let half = Tensor::randn(0f32, 1.0, (4, 6), &Device::Cpu).unwrap();
        tensors.insert("half.weight".into(), half.to_dtype(DType::F16).unwrap());
        candle_core::safetensors::save(&tensors, &path).unwrap();
        let vb = var_builder_transposing(&path, DType::F32, &Device::Cpu, |n| n != "row.weight")
            .unwrap();
        for (name, shape) in shapes {
            let got = vb.get(shape, name).unwrap();
            let want = tensors[name].to_vec2::<f32>().unwrap();
            assert_eq!(got.to_vec2::<f32>().unwrap(), want, "{name}");
            // A picked weight is the transpose of a contiguous (cols, rows) buffer.
            let strides = if name == "row.weight" {
                [shape.1, 1]
            } else {
                [1, shape.0]
            };
            assert_eq!(got.stride(), strides, "{name}");
        }
        let got = vb.get((4, 6), "half.weight").unwrap();
        let want = tensors["half.weight"].to_dtype(DType::F32).unwrap();
        assert_eq!(
            got.to_vec2::<f32>().unwrap(),
            want.to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn weights_not_4_byte_aligned_in_the_file_are_read_and_transposed_too() {
        // A header padded so that the data starts at an odd byte: the mapped bytes cannot be
        // viewed as f32s, so the reader copies them first.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let values: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        let mut header = r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#.to_string();
        while (8 + header.len()) % 4 != 1 {
            header.push(' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(bytemuck::cast_slice(&values));
        std::fs::write(&path, &bytes).unwrap();
        let vb = var_builder_transposing(&path, DType::F32, &Device::Cpu, |_| true).unwrap();
        let got = vb.get((2, 3), "w").unwrap();
        assert_eq!(got.stride(), [1, 2]);
        assert_eq!(
            got.to_vec2::<f32>().unwrap(),
            [[-2.5, -1.5, -0.5], [0.5, 1.5, 2.5]]
        );
    }

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
