//! The CLIP variants people inspect, by short name: hub repositories with their family and
//! licence, for the model menu and `--model`.

/// One preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// What `--model` accepts.
    pub name: &'static str,
    /// The Hugging Face hub repository.
    pub hub_id: &'static str,
    pub family: &'static str,
    pub licence: &'static str,
    /// Why it cannot be loaded yet, when it cannot.
    pub unsupported: Option<&'static str>,
}

/// Every preset, in menu order.
pub const PRESETS: [Preset; 9] = [
    Preset {
        name: "openai-b32",
        hub_id: "openai/clip-vit-base-patch32",
        family: "CLIP (OpenAI), ViT-B/32",
        licence: "MIT",
        unsupported: None,
    },
    Preset {
        name: "openai-b16",
        hub_id: "openai/clip-vit-base-patch16",
        family: "CLIP (OpenAI), ViT-B/16: the DCSM paper's backbone",
        licence: "MIT",
        unsupported: None,
    },
    Preset {
        name: "openai-l14",
        hub_id: "openai/clip-vit-large-patch14",
        family: "CLIP (OpenAI), ViT-L/14",
        licence: "MIT",
        unsupported: None,
    },
    Preset {
        name: "openai-l14-336",
        hub_id: "openai/clip-vit-large-patch14-336",
        family: "CLIP (OpenAI), ViT-L/14 at 336 px",
        licence: "MIT",
        unsupported: None,
    },
    Preset {
        name: "laion-b32",
        hub_id: "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        family: "OpenCLIP, ViT-B-32 trained on LAION-2B",
        licence: "MIT",
        unsupported: None,
    },
    Preset {
        name: "metaclip-b16",
        hub_id: "facebook/metaclip-b16-fullcc2.5b",
        family: "MetaCLIP, ViT-B/16 (2.5B curated pairs)",
        licence: "CC BY-NC 4.0 (non-commercial)",
        unsupported: None,
    },
    Preset {
        name: "longclip-l",
        hub_id: "BeichenZhang/LongCLIP-L",
        family: "Long-CLIP, ViT-L/14 with 248 text positions",
        licence: "Apache-2.0",
        unsupported: Some(
            "its repository holds only a pickled .pt, which clipscope never unpickles; convert it \
             to a Hugging Face folder first",
        ),
    },
    Preset {
        name: "siglip-b16",
        hub_id: "google/siglip-base-patch16-224",
        family: "SigLIP, base patch16-224: sigmoid scores, no CLS row, no DCSM scorer or SmartCLIP",
        licence: "Apache-2.0",
        unsupported: None,
    },
    Preset {
        name: "siglip2-b16",
        hub_id: "google/siglip2-base-patch16-224",
        family: "SigLIP 2, base patch16-224 (fixed resolution, Gemma tokenizer): sigmoid scores, \
                 no CLS row, no DCSM scorer or SmartCLIP",
        licence: "Apache-2.0",
        unsupported: None,
    },
];

/// The preset of a short name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The line shown on hover: family, licence, repository.
pub fn describe(p: &Preset) -> String {
    let mut s = format!("{}\nlicence: {}\n{}", p.family, p.licence, p.hub_id);
    if let Some(why) = p.unsupported {
        s.push_str(&format!("\nnot loadable yet: {why}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        for p in &PRESETS {
            assert_eq!(find(p.name), Some(p));
            assert_eq!(PRESETS.iter().filter(|q| q.name == p.name).count(), 1);
            assert!(describe(p).contains(p.licence));
        }
        assert!(find("nope").is_none());
    }
}
