//! Bad images and prompts give one clear error from the engine, never a crash.

mod common;

use clipscope::model::preprocess::decode_bytes;

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
