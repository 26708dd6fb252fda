//! Where weights come from: a local folder, the Hugging Face hub, or the embedded default.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ModelError;

/// A model to load.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelSource {
    /// A folder with `config.json` and `model.safetensors`.
    Folder(PathBuf),
    /// A Hugging Face hub id such as `openai/clip-vit-base-patch32`.
    Hub(String),
    /// The shapes-world model compiled into the binary (assets/default-model).
    Embedded,
    /// A preset by its short name (`laion-b32`), fetched from the hub.
    Preset(String),
}

/// The embedded default model's files (trained by `clipscope train-clip`, see its model card).
pub mod embedded {
    pub const CONFIG: &str = include_str!("../../assets/default-model/config.json");
    pub const WEIGHTS: &[u8] = include_bytes!("../../assets/default-model/model.safetensors");
    pub const NAME: &str = "shapes-world CLIP (embedded)";
    /// DCSM scorers trained for it by `clipscope train-dcsm`, the shown one first.
    pub const SCORERS: [(&str, &[u8]); 1] = [(
        include_str!("../../assets/default-model/scorer.json"),
        include_bytes!("../../assets/default-model/scorer.safetensors"),
    )];
    /// SmartCLIP's mask network trained for it by `clipscope train-smartclip`.
    pub const SMARTCLIP: (&str, &[u8]) = (
        include_str!("../../assets/default-model/smartclip.json"),
        include_bytes!("../../assets/default-model/smartclip.safetensors"),
    );
}

/// Progress of a long step (a download), reported as it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub what: String,
    pub done: u64,
    /// Total units, when known.
    pub total: Option<u64>,
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Folder(p) => write!(f, "{}", p.display()),
            Self::Hub(id) => write!(f, "{id}"),
            Self::Embedded => write!(f, "{}", embedded::NAME),
            Self::Preset(name) => match super::presets::find(name) {
                Some(p) => write!(f, "{name} ({})", p.hub_id),
                None => write!(f, "{name}"),
            },
        }
    }
}

impl ModelSource {
    /// Reads a `--model` argument: an existing folder, else something shaped like `owner/name`
    /// is a hub id, else a folder (which will be reported missing).
    pub fn parse(arg: &str) -> Self {
        let path = Path::new(arg);
        if let Some(p) = super::presets::find(arg).filter(|_| !path.exists()) {
            return Self::Preset(p.name.to_string());
        }
        let hub_shaped = arg.split('/').count() == 2
            && !arg.starts_with(['.', '/', '~'])
            && !arg.contains('\\')
            && arg.split('/').all(|p| !p.is_empty());
        if path.exists() || !hub_shaped {
            Self::Folder(path.to_path_buf())
        } else {
            Self::Hub(arg.to_string())
        }
    }

    /// The local folder holding the files, downloading them first for a hub id.
    pub fn resolve(&self, progress: &mut dyn FnMut(Progress)) -> Result<PathBuf, ModelError> {
        match self {
            Self::Folder(dir) => {
                if dir.is_dir() {
                    Ok(dir.clone())
                } else {
                    Err(ModelError::File {
                        path: dir.clone(),
                        message: "model folder does not exist (it must hold config.json and model.safetensors)"
                            .into(),
                    })
                }
            }
            Self::Hub(id) => hub::download(id, &hub::HubOptions::from_env(), progress),
            Self::Preset(name) => {
                let p = super::presets::find(name).ok_or_else(|| {
                    ModelError::Config(format!("{name} is not a preset of this version"))
                })?;
                if let Some(why) = p.unsupported {
                    return Err(ModelError::Config(format!(
                        "{name} ({}, {}): {why}",
                        p.family, p.hub_id
                    )));
                }
                hub::download(p.hub_id, &hub::HubOptions::from_env(), progress)
            }
            Self::Embedded => Err(ModelError::Config(
                "the embedded model has no folder".into(),
            )),
        }
    }
}

/// The safetensors file of a model folder; refuses pickles with a clear message.
pub fn weights_file(dir: &Path) -> Result<PathBuf, ModelError> {
    let file = dir.join("model.safetensors");
    if !file.is_file() {
        let pickle = ["pytorch_model.bin", "model.pt", "model.bin"]
            .iter()
            .any(|n| dir.join(n).is_file());
        let hint = if pickle {
            " (the folder has a PyTorch pickle; clipscope never unpickles files: convert it to \
             safetensors, e.g. with transformers' save_pretrained(safe_serialization=True))"
        } else {
            ""
        };
        return Err(ModelError::Weights(format!(
            "{}: file not found{hint}",
            file.display()
        )));
    }
    let mut head = [0u8; 9];
    let read = std::fs::File::open(&file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| ModelError::Io {
            path: file.clone(),
            source: e,
        })?;
    // Safetensors: an 8-byte little-endian header length, then the JSON header's `{`.
    // Torch pickles start with a zip header ("PK") or the pickle protocol opcode 0x80.
    let safetensors = read == 9 && head[8] == b'{';
    if !safetensors && read >= 2 && (head.starts_with(b"PK") || head[0] == 0x80) {
        return Err(ModelError::Weights(format!(
            "{} is a PyTorch pickle, not safetensors; clipscope refuses to unpickle it \
             (convert it to safetensors first)",
            file.display()
        )));
    }
    Ok(file)
}

#[cfg(feature = "hub")]
pub mod hub {
    //! Downloads through the `hf-hub` crate into the standard Hugging Face cache.
    use super::{ModelError, Progress};
    use std::path::PathBuf;

    /// Where to download from and to; `from_env` honours `HF_ENDPOINT` and `HF_HOME`.
    #[derive(Debug, Clone, Default)]
    pub struct HubOptions {
        pub endpoint: Option<String>,
        pub cache_dir: Option<PathBuf>,
    }

    impl HubOptions {
        pub fn from_env() -> Self {
            Self::default()
        }
    }

    struct Report<'a> {
        what: String,
        done: u64,
        total: Option<u64>,
        sink: &'a mut dyn FnMut(Progress),
    }

    impl hf_hub::api::Progress for Report<'_> {
        fn init(&mut self, size: usize, filename: &str) {
            self.what = format!("downloading {filename}");
            self.total = Some(size as u64);
            self.done = 0;
            self.emit();
        }
        fn update(&mut self, size: usize) {
            self.done += size as u64;
            self.emit();
        }
        fn finish(&mut self) {
            self.emit();
        }
    }

    impl Report<'_> {
        fn emit(&mut self) {
            (self.sink)(Progress {
                what: self.what.clone(),
                done: self.done,
                total: self.total,
            });
        }
    }

    /// Fetches config.json, model.safetensors and, where present, the tokenizer and
    /// preprocessor files; returns the snapshot folder.
    pub fn download(
        id: &str,
        options: &HubOptions,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PathBuf, ModelError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            ModelError::Hub(format!(
                "could not download {id} from the Hugging Face hub ({e}). If this machine is \
                 offline, download the checkpoint elsewhere and pass its folder with --model <DIR> \
                 (a folder holding config.json and model.safetensors)"
            ))
        };
        let mut builder = hf_hub::api::sync::ApiBuilder::from_env().with_progress(false);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        if let Some(dir) = &options.cache_dir {
            builder = builder.with_cache_dir(dir.clone());
        }
        let api = builder.build().map_err(|e| unreachable(&e))?;
        let repo = api.model(id.to_string());
        let mut folder = None;
        // A Hugging Face CLIPModel or SiglipModel repository, else an OpenCLIP one (open_clip's own files).
        let hf = repo.info().map_or(true, |info| {
            let has = |n: &str| info.siblings.iter().any(|s| s.rfilename == n);
            has("config.json") || !has(crate::io::openclip::CONFIG)
        });
        let files: &[(&str, bool)] = if hf {
            &[
                ("config.json", true),
                ("model.safetensors", true),
                ("tokenizer.json", false),
                ("preprocessor_config.json", false),
                // SigLIP: its SentencePiece model and the tokens it names.
                ("spiece.model", false),
                ("tokenizer_config.json", false),
            ]
        } else {
            &[
                (crate::io::openclip::CONFIG, true),
                (crate::io::openclip::WEIGHTS, true),
            ]
        };
        for &(file, required) in files {
            let report = Report {
                what: file.into(),
                done: 0,
                total: None,
                sink: &mut *progress,
            };
            match repo.download_with_progress(file, report) {
                Ok(path) => folder = folder.or_else(|| path.parent().map(PathBuf::from)),
                Err(e) if required => return Err(unreachable(&e)),
                Err(_) => {}
            }
        }
        folder.ok_or_else(|| unreachable(&"no files"))
    }
}

#[cfg(not(feature = "hub"))]
pub mod hub {
    //! Built without the `hub` feature: hub ids are refused with a clear message.
    use super::{ModelError, Progress};
    use std::path::PathBuf;

    #[derive(Debug, Clone, Default)]
    pub struct HubOptions {
        pub endpoint: Option<String>,
        pub cache_dir: Option<PathBuf>,
    }

    impl HubOptions {
        pub fn from_env() -> Self {
            Self::default()
        }
    }

    pub fn download(
        id: &str,
        _options: &HubOptions,
        _progress: &mut dyn FnMut(Progress),
    ) -> Result<PathBuf, ModelError> {
        Err(ModelError::Hub(format!(
            "cannot download {id}: this build has no hub support (feature `hub`); \
             pass a local folder with --model <DIR>"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_arguments() {
        assert_eq!(
            ModelSource::parse("openai/clip-vit-base-patch32"),
            ModelSource::Hub("openai/clip-vit-base-patch32".into())
        );
        assert_eq!(
            ModelSource::parse("./models/x"),
            ModelSource::Folder("./models/x".into())
        );
        assert_eq!(
            ModelSource::parse("/abs/a"),
            ModelSource::Folder("/abs/a".into())
        );
        assert_eq!(
            ModelSource::parse("plain"),
            ModelSource::Folder("plain".into())
        );
        assert_eq!(ModelSource::parse("src"), ModelSource::Folder("src".into()));
    }

    #[test]
    fn missing_folder_is_reported() {
        let err = ModelSource::Folder("/no/such/dir".into())
            .resolve(&mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/no/such/dir") && err.contains("does not exist"),
            "{err}"
        );
    }

    #[test]
    fn pickles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
        let err = weights_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("never unpickles"), "{err}");
        std::fs::write(dir.path().join("model.safetensors"), b"\x80\x02}q\x00").unwrap();
        let err = weights_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("refuses to unpickle"), "{err}");
    }

    #[cfg(feature = "hub")]
    #[test]
    fn unreachable_hub_names_the_folder_option() {
        // Port 9 on loopback refuses at once: the download path runs up to the network boundary.
        let cache = tempfile::tempdir().unwrap();
        let options = hub::HubOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            cache_dir: Some(cache.path().to_path_buf()),
        };
        let err = hub::download("openai/clip-vit-base-patch32", &options, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not download openai/clip-vit-base-patch32"),
            "{err}"
        );
        assert!(err.contains("--model <DIR>"), "{err}");
    }
}
