//! Measuring (issue #15): the consultant draws a line on the image shown, the kiosk works out its
//! length from the file's Pixel Spacing and both screens show the same figure; a file without a
//! spacing says so instead of guessing.

use crate::support::{read, share, text};
use sc_imaging::{ShareLimits, Viewer};
use sc_proto::share::{FromKiosk, ToKiosk, View};
use std::time::Instant;

fn holding(names: &[&str]) -> Viewer {
    holding_files(names.iter().map(|n| read(n)).collect())
}

fn holding_files(files: Vec<Vec<u8>>) -> Viewer {
    let mut v = Viewer::new(ShareLimits::default());
    share(&mut v, Instant::now(), 1, &files);
    v
}

fn measure(v: &mut Viewer, line: Option<[[f32; 2]; 2]>) -> (Option<f64>, String) {
    match &v.on_text(Instant::now(), &text(&ToKiosk::Measure { line }))[..] {
        [FromKiosk::Measured { mm, label, .. }] => (*mm, label.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn issue_15_a_distance_is_measured_in_millimetres_from_the_pixel_spacing() {
    // CT_small: 128 x 128 pixels, Pixel Spacing 0.661468 mm each way.
    let mut v = holding(&["CT_small.dcm"]);
    let spacing = 0.661_468;
    // Across the whole width: 128 pixels.
    let (mm, label) = measure(&mut v, Some([[0.0, 0.5], [1.0, 0.5]]));
    let expected = 128.0 * spacing;
    let mm = mm.expect("a spacing");
    assert!((mm - expected).abs() / expected < 0.01, "{mm} mm, expected {expected}");
    assert_eq!(label, format!("{expected:.1} mm"));
    // A diagonal of 30 x 40 pixels: 50 pixels.
    let (mm, _) = measure(&mut v, Some([[10.0 / 128.0, 20.0 / 128.0], [40.0 / 128.0, 60.0 / 128.0]]));
    assert!((mm.expect("mm") - 50.0 * spacing).abs() < 0.01 * 50.0 * spacing);
    // Both screens: the kiosk draws the same line and words.
    let screen = v.screen().expect("screen");
    assert_eq!(screen.measure.as_ref().map(|(_, l)| l.as_str()), Some(format!("{:.1} mm", 50.0 * spacing).as_str()));
    // Taken away.
    assert_eq!(measure(&mut v, None), (None, String::new()));
    assert!(v.screen().expect("screen").measure.is_none());
}

#[test]
fn issue_15_without_a_pixel_spacing_the_measurement_says_so() {
    // A photograph (PNG) carries no spacing.
    let mut png = Vec::new();
    image::GrayImage::from_pixel(40, 30, image::Luma([90u8]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("png");
    let mut v = holding_files(vec![png]);
    let (mm, label) = measure(&mut v, Some([[0.0, 0.0], [1.0, 1.0]]));
    assert_eq!(mm, None);
    assert!(label.contains("no pixel spacing"), "{label}");
}

#[test]
fn issue_15_a_measurement_stays_with_its_image_and_bad_numbers_are_refused() {
    let mut v = holding(&["CT_small.dcm", "MR_small.dcm"]);
    assert!(measure(&mut v, Some([[0.1, 0.1], [0.9, 0.9]])).0.is_some());
    // Another image: the line does not follow.
    v.on_text(Instant::now(), &text(&ToKiosk::View(View { stack: 1, ..View::default() })));
    assert!(v.screen().expect("screen").measure.is_none());
    let r = v.on_text(Instant::now(), r#"{"type":"measure","line":[[0.1,0.1],[1e999,0.5]]}"#);
    assert!(matches!(&r[..], [FromKiosk::Error { .. }]), "{r:?}");
    assert!(v.screen().expect("screen").measure.is_none(), "nothing drawn");
}
