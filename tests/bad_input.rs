//! Bad images and prompts give one clear error from the engine, never a crash.

mod common;

use clipscope::io::preprocess::decode_bytes;

#[test]
fn huge_images_are_refused_from_the_header() {
    let err = decode_bytes(&common::png_claiming(20_000, 20_000))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("20000×20000") && err.contains("larger than"),
        "{err}"
    );
    // A very wide but small image is fine to read (its decode fails here only for lack of data).
    let err = decode_bytes(&common::png_claiming(10_000, 10))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("larger than"), "{err}");
}

#[test]
fn truncated_png_is_an_error() {
    let mut png = Vec::new();
    image::DynamicImage::new_rgb8(64, 64)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let err = decode_bytes(&png[..png.len() / 2]).unwrap_err().to_string();
    assert!(err.contains("cannot decode"), "{err}");
}

use clipscope::io::preprocess::{decode_file, preprocess, PreprocessConfig};
use std::path::{Path, PathBuf};

fn odd(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/odd")
        .join(name)
}

/// Decodes and preprocesses for a 224-px model; the pixels must be finite.
fn model_input(image: &image::DynamicImage) -> Vec<f32> {
    let p = preprocess(image, &PreprocessConfig::openai(224));
    assert_eq!(p.pixels.len(), 3 * 224 * 224);
    assert!(p.pixels.iter().all(|v| v.is_finite()));
    p.pixels
}

#[test]
fn zero_byte_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let err = decode_file(&empty).unwrap_err().to_string();
    assert!(
        err.contains("empty.png") && err.contains("0 bytes"),
        "{err}"
    );
}

#[test]
fn truncated_jpeg_is_an_error() {
    let bytes = std::fs::read(odd("exif_rotate90.jpg")).unwrap();
    let err = decode_bytes(&bytes[..bytes.len() / 3])
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot decode"), "{err}");
}

#[test]
fn sixteen_bit_png_keeps_its_range() {
    let img = decode_file(&odd("grey16.png")).unwrap().image;
    let rgb = img.to_rgb8();
    assert_eq!(rgb.get_pixel(0, 0)[0], 0);
    assert_eq!(rgb.get_pixel(47, 0)[0], 255);
    model_input(&img);
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    let img = decode_file(&odd("cmyk.jpg")).unwrap().image;
    let p = img.to_rgb8().get_pixel(20, 15).0;
    // Pure cyan ink: little red, much green and blue.
    assert!(p[0] < 80 && p[1] > 170 && p[2] > 170, "{p:?}");
    model_input(&img);
}

#[test]
fn grey_alpha_decodes() {
    let img = decode_file(&odd("grey_alpha.png")).unwrap().image;
    assert_eq!(img.to_rgb8().get_pixel(5, 5).0, [200, 200, 200]);
    model_input(&img);
}

#[test]
fn animated_gif_uses_its_first_frame() {
    let img = decode_file(&odd("animated.gif")).unwrap().image;
    assert_eq!(img.to_rgb8().get_pixel(16, 16).0, [255, 0, 0]);
}

#[test]
fn exif_rotation_is_applied() {
    let img = decode_file(&odd("exif_rotate90.jpg")).unwrap().image;
    assert_eq!(
        (img.width(), img.height()),
        (20, 60),
        "shown as the camera meant"
    );
    let top = img.to_rgb8().get_pixel(10, 5).0;
    let bottom = img.to_rgb8().get_pixel(10, 55).0;
    assert!(top[0] > 200 && top[2] < 60, "top is red: {top:?}");
    assert!(
        bottom[2] > 200 && bottom[0] < 60,
        "bottom is blue: {bottom:?}"
    );
}

#[test]
fn one_pixel_and_very_wide_images_preprocess() {
    let one = decode_file(&odd("one_pixel.png")).unwrap().image;
    let pixels = model_input(&one);
    assert!(
        pixels.windows(2).take(100).all(|w| w[0] == w[1]),
        "a single colour everywhere"
    );
    let wide = decode_file(&odd("wide_10000x10.png")).unwrap().image;
    let p = preprocess(&wide, &PreprocessConfig::openai(224));
    assert!(p.pixels.iter().all(|v| v.is_finite()));
    // The centre crop of a 10000×10 image is a 10×10 square in the middle.
    assert!(
        (p.crop.x - 4995.0).abs() < 1.0 && (p.crop.w - 10.0).abs() < 0.1,
        "{:?}",
        p.crop
    );
}

/// The tiny fixture model (real tokenizer, random towers).
fn tiny() -> clipscope::engine::LoadedModel {
    clipscope::engine::LoadedModel::from_folder(&common::parity("tiny_quick_gelu"), "tiny").unwrap()
}

#[test]
fn strange_prompts_encode_or_say_why() {
    let model = tiny();
    let context = model.config().text.max_position_embeddings;
    let prompts = [
        "a red circle ".repeat(7_700), // about 100,000 characters
        "a red\0circle\0".into(),
        "🐶🐱🦊🐻".into(),
        "كلب أحمر بجانب دائرة".into(),                 // right to left
        "a\u{301}\u{302}\u{303} ci\u{327}rcle".into(), // combining marks
        "<|endoftext|>".into(),
        "<|startoftext|><|endoftext|><|endoftext|>".into(),
        "\u{202e}elcric der a".into(), // a right-to-left override
    ];
    for prompt in &prompts {
        let tokenized = model.tokenize(prompt).unwrap();
        assert!(
            tokenized.ids.len() <= context,
            "{prompt:.40}: longer than the context"
        );
        assert_eq!(
            tokenized.ids.first(),
            Some(&49406),
            "{prompt:.40}: starts with SOS"
        );
        assert_eq!(
            tokenized.ids[tokenized.eos_index()],
            49407,
            "{prompt:.40}: pooled at an EOS"
        );
    }
    assert!(model.tokenize(&prompts[0]).unwrap().truncated);
    let encoded = model.encode_prompts(&prompts).unwrap();
    for (p, t) in prompts.iter().zip(&encoded.tokens) {
        let values: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{p:.40}: not finite");
    }
}

#[test]
fn hostile_image_files_give_messages() {
    let dir = tempfile::tempdir().unwrap();
    // A folder given as an image.
    let err = decode_file(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
    // An image file over 1 GB (sparse: it claims the size, the disk holds nothing) is refused
    // before it is read.
    let big = dir.path().join("huge.png");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(clipscope::io::preprocess::MAX_FILE_BYTES + 1)
        .unwrap();
    let err = decode_file(&big).unwrap_err().to_string();
    assert!(
        err.contains("huge.png") && err.contains("too large"),
        "{err}"
    );
    // A PNG whose header says 0×0.
    let err = decode_bytes(&common::png_claiming(0, 0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("decode") || err.contains("no pixels"), "{err}");
    // A GIF bomb: a 65,535² screen and frame in a few bytes.
    let mut gif = b"GIF89a".to_vec();
    gif.extend([0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00]);
    gif.extend([0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00]);
    gif.extend([0x02, 0x02, 0x4c, 0x01, 0x00, 0x3b]);
    let err = decode_bytes(&gif).unwrap_err().to_string();
    assert!(
        err.contains("65535×65535") && err.contains("larger than"),
        "{err}"
    );
    // A TIFF bomb: 100,000² pixels of 8-bit grey declared in one IFD.
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    let entries: [(u16, u16, u32); 7] = [
        (256, 4, 100_000), // ImageWidth (LONG)
        (257, 4, 100_000), // ImageLength
        (258, 3, 8),       // BitsPerSample
        (259, 3, 1),       // no compression
        (262, 3, 1),       // black is zero
        (273, 4, 200),     // StripOffsets
        (279, 4, 10),      // StripByteCounts
    ];
    tiff.extend((entries.len() as u16).to_le_bytes());
    for (tag, kind, value) in entries {
        tiff.extend(tag.to_le_bytes());
        tiff.extend(kind.to_le_bytes());
        tiff.extend(1u32.to_le_bytes());
        tiff.extend(value.to_le_bytes());
    }
    tiff.extend(0u32.to_le_bytes());
    tiff.resize(210, 0);
    let err = decode_bytes(&tiff).unwrap_err().to_string();
    assert!(
        err.contains("larger than") || err.contains("decode"),
        "{err}"
    );
}

#[test]
fn an_image_rewritten_on_disk_while_it_is_decoded_gives_a_picture_or_a_message() {
    use clipscope::io::preprocess::decode_file;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("changing.png");
    let png = |w: u32, h: u32| {
        let mut bytes = Vec::new();
        image::DynamicImage::new_rgb8(w, h)
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    };
    let (a, b) = (png(300, 200), png(64, 640));
    std::fs::write(&path, &a).unwrap();
    let stop = AtomicBool::new(false);
    let (mut pictures, mut messages) = (0, 0);
    std::thread::scope(|s| {
        // Rewrites the file in place (truncate, then write in pieces), never atomically, so the
        // reader sees whole files, empty ones, half-written ones and mixtures.
        s.spawn(|| {
            use std::io::Write;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let bytes = if i % 2 == 0 { &b } else { &a };
                let mut f = std::fs::File::create(&path).unwrap();
                for chunk in bytes.chunks(97) {
                    f.write_all(chunk).unwrap();
                }
                i += 1;
            }
        });
        for _ in 0..300 {
            match decode_file(&path) {
                Ok(img) => {
                    let size = (img.image.width(), img.image.height());
                    assert!(size == (300, 200) || size == (64, 640), "{size:?}");
                    pictures += 1;
                }
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.contains("changing.png") && !e.contains('\n'), "{e}");
                    messages += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(pictures + messages, 300);
}
