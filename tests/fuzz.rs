//! Property-based fuzzing (proptest; cargo-fuzz needs a nightly toolchain this project does not
//! assume): image decode + preprocess, and tokenise + DCSM, never panic on any input.
//! `CLIPSCOPE_FUZZ_CASES` sets the number of inputs per target (default 256).

use clipscope::engine::LoadedModel;
use clipscope::io::pipeline::ImageConvention;
use clipscope::io::preprocess::{decode_bytes, preprocess_decoded, PreprocessConfig};
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("CLIPSCOPE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        [
            "odd/cmyk.jpg",
            "odd/exif_rotate90.jpg",
            "odd/animated.gif",
            "odd/grey16.png",
            "odd/grey_alpha.png",
            "parity/images/wide.png",
        ]
        .iter()
        .map(|f| std::fs::read(root.join(f)).unwrap())
        .collect()
    })
}

fn model() -> &'static LoadedModel {
    static MODEL: OnceLock<LoadedModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/tiny_quick_gelu");
        LoadedModel::from_folder(&dir, "tiny").unwrap()
    })
}

/// Whatever decodes must preprocess to finite model input.
fn check_image(bytes: &[u8]) {
    if let Ok(img) = decode_bytes(bytes) {
        for convention in [ImageConvention::Transformers, ImageConvention::Openai] {
            let config = PreprocessConfig::openai(40).with_convention(convention);
            let p = preprocess_decoded(&img, &config);
            assert!(p.pixels.iter().all(|v| v.is_finite()));
        }
    }
}

/// A valid image with bytes flipped, a range overwritten and the tail cut.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..seeds().len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..16),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(which, flips, cut)| {
            let mut b = seeds()[which].clone();
            for (at, v) in flips {
                let i = at.index(b.len());
                b[i] = v;
            }
            let keep = 8 + cut.index(b.len() - 7);
            b.truncate(keep);
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check_image(&bytes);
    }

    #[test]
    fn mutated_images_never_panic(bytes in mutated()) {
        check_image(&bytes);
    }

    #[test]
    fn any_prompt_tokenises_and_maps(text in "\\PC{0,120}", extra in "[a-z ]{0,40}") {
        let model = model();
        let prompts = vec![text, extra];
        match model.encode_prompts(&prompts) {
            Ok(encoded) => {
                let image = model.encode_pixels(&clipscope::engine::Preprocessed {
                    pixels: vec![0.1; 3 * 40 * 40],
                    side: 40,
                    crop: clipscope::engine::CropRect { x: 0.0, y: 0.0, w: 40.0, h: 40.0 },
                    original: (40, 40),
                }).unwrap();
                for s in model.score(&image, &encoded).unwrap() {
                    prop_assert_eq!(s.dcsm.rows, 26);
                    prop_assert_eq!(s.dcsm.cols, s.tokenized.ids.len());
                    prop_assert!(s.tokenized.ids.len() <= 20);
                    prop_assert!(s.dcsm.data.iter().all(|v| v.is_finite()));
                }
            }
            // Only an empty (or whitespace-only) prompt may be refused.
            Err(e) => prop_assert!(prompts.iter().any(|p| p.trim().is_empty()), "{e}"),
        }
    }
}
