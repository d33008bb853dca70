//! The real kiosk window under Xvfb while Chromium shares images over a real call: screenshots
//! show the CT's own pixels and then the chosen slice of a multi-frame file, placed where the
//! viewer draws them, and the consultant's pointer in yellow where they point. Meanwhile strace
//! watches the kiosk's whole process tree: receiving and showing images creates no file.

use crate::window::{screenshot, window_call, KioskProcess, WindowCall, DISPLAY};
use sc_e2e::browser::Driver;
use sc_e2e::{artifacts_dir, dicom_dir};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The call strip's height under the native surface (src-tauri/src/surface.rs).
const CONTROLS_HEIGHT: u32 = 96;

fn kiosk_msg(v: &Value, kind: &str) -> Option<Value> {
    (v["event"] == "kiosk" && v["msg"]["type"] == kind).then(|| v["msg"].clone())
}

/// Where the viewer draws a `w` x `h` image at zoom 1 on a `screen` of this size: origin and scale.
fn placement(screen: (u32, u32), (w, h): (u32, u32)) -> (f64, f64, f64) {
    let (sw, sh) = (f64::from(screen.0), f64::from(screen.1 - CONTROLS_HEIGHT));
    let column = (sw / 4.0).max(160.0);
    let (bw, bh) = (sw - column - 16.0, sh);
    let scale = (bw / f64::from(w)).min(bh / f64::from(h));
    (bw / 2.0 - f64::from(w) * scale / 2.0, bh / 2.0 - f64::from(h) * scale / 2.0, scale)
}

/// The fraction of the image's pixels (sampled at their centres, below the caption bar) whose
/// grey on screen is within 8 of what the viewer should show.
pub(crate) fn matching(shot: &Path, expected: &[u8], size: (u32, u32)) -> f64 {
    matching_where(shot, expected, size, |_| true)
}

/// As [`matching`], over the pixels where `expected` and `other` differ (the slices' difference).
fn matching_where_they_differ(shot: &Path, expected: &[u8], other: &[u8], size: (u32, u32)) -> f64 {
    matching_where(shot, expected, size, |i| expected[i].abs_diff(other[i]) > 32)
}

fn matching_where(shot: &Path, expected: &[u8], size: (u32, u32), include: impl Fn(usize) -> bool) -> f64 {
    matching_fraction(shot, size, |i, p| {
        include(i).then(|| (i32::from(p[0]) - i32::from(expected[i])).abs() <= 8 && p[0] == p[2])
    })
}

/// The fraction of the image's pixels (sampled at their centres, below the caption bar) whose
/// colour on screen is within 8 levels, on every channel, of `expected` (RGB).
fn matching_rgb(shot: &Path, expected: &[u8], size: (u32, u32)) -> f64 {
    matching_fraction(shot, size, |i, p| Some((0..3).all(|c| p[c].abs_diff(expected[3 * i + c]) <= 8)))
}

/// Samples the screen at the centre of each of the image's pixels where the viewer draws it at
/// zoom 1, below the caption bar: `check(index, on-screen colour)` says whether it matches (or
/// `None` to leave the pixel out); returns the fraction that matched.
fn matching_fraction(shot: &Path, (w, h): (u32, u32), check: impl Fn(usize, &image::Rgb<u8>) -> Option<bool>) -> f64 {
    let img = image::open(shot).expect("screenshot").to_rgb8();
    let (x0, y0, scale) = placement(img.dimensions(), (w, h));
    let (mut ok, mut n) = (0u32, 0u32);
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (x0 + (f64::from(x) + 0.5) * scale, y0 + (f64::from(y) + 0.5) * scale);
            if sy < 48.0 {
                continue; // under the caption
            }
            if let Some(matched) = check((y * w + x) as usize, img.get_pixel(sx as u32, sy as u32)) {
                n += 1;
                ok += u32::from(matched);
            }
        }
    }
    f64::from(ok) / f64::from(n.max(1))
}

/// Cyan measurement pixels along the line between two image points (within 6 px of it).
fn measure_pixels(shot: &Path, (w, h): (u32, u32), ((ax, ay), (bx, by)): ((f64, f64), (f64, f64))) -> usize {
    let img = image::open(shot).expect("screenshot").to_rgb8();
    let (x0, y0, scale) = placement(img.dimensions(), (w, h));
    let at = |fx: f64, fy: f64| (x0 + fx * f64::from(w) * scale, y0 + fy * f64::from(h) * scale);
    let ((sx, sy), (ex, ey)) = (at(ax, ay), at(bx, by));
    let mut n = 0;
    for k in 0..=200 {
        let t = f64::from(k) / 200.0;
        let (cx, cy) = (sx + (ex - sx) * t, sy + (ey - sy) * t);
        for dy in -6i32..=6 {
            let (x, y) = (cx as i64, cy as i64 + i64::from(dy));
            if x < 0 || y < 0 || x >= i64::from(img.width()) || y >= i64::from(img.height()) {
                continue;
            }
            let p = img.get_pixel(x as u32, y as u32);
            if p[0] < 60 && p[1] > 190 && p[2] > 220 {
                n += 1;
            }
        }
    }
    n
}

/// Yellow pointer pixels within 40 px of where image point (`fx`, `fy`) is drawn.
fn pointer_pixels(shot: &Path, (w, h): (u32, u32), (fx, fy): (f64, f64)) -> usize {
    let img = image::open(shot).expect("screenshot").to_rgb8();
    let (x0, y0, scale) = placement(img.dimensions(), (w, h));
    let (cx, cy) = (x0 + fx * f64::from(w) * scale, y0 + fy * f64::from(h) * scale);
    let mut n = 0;
    for y in (cy - 40.0) as u32..(cy + 40.0) as u32 {
        for x in (cx - 40.0) as u32..(cx + 40.0) as u32 {
            let p = img.get_pixel(x, y);
            if p[0] > 230 && (190..230).contains(&p[1]) && p[2] < 40 {
                n += 1;
            }
        }
    }
    n
}

pub(crate) fn expected(path: &Path, frame: usize) -> (Vec<u8>, (u32, u32)) {
    let image = sc_imaging::decode(&std::fs::read(path).expect("read"), &Default::default()).expect("decode");
    match image.render(frame, image.default_window).expect("frame") {
        sc_imaging::Rendered::Grey(p) => (p, (image.width, image.height)),
        other => panic!("expected grey: {other:?}"),
    }
}

/// Screenshots until `ok` holds (off the runtime); returns the last screenshot's path.
async fn shot_until(name: &str, what: &'static str, ok: impl Fn(&Path) -> bool + Send + 'static) -> PathBuf {
    let path = artifacts_dir().join(name);
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        crate::window::wait_for(what, Duration::from_secs(30), || {
            screenshot(&p);
            ok(&p)
        })
    })
    .await
    .expect("join");
    path
}

/// strace on every process of the kiosk's tree, logging the calls that create or write files.
struct FileWatch {
    strace: Child,
    log: PathBuf,
}

impl FileWatch {
    fn start(kiosk: &KioskProcess) -> FileWatch {
        let log = artifacts_dir().join("share-window-strace.log");
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-e", "trace=creat,open,openat,openat2,mknod,mknodat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,mkdir,mkdirat,truncate"]);
        cmd.arg("-o").arg(&log);
        for pid in sc_e2e::tree(kiosk.child.id()) {
            cmd.arg("-p").arg(pid.to_string());
        }
        let strace = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("strace");
        // The check means nothing unless strace is attached: the kernel says who traces the kiosk.
        let pid = kiosk.child.id();
        let traced = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"))
        };
        crate::window::wait_for("strace to attach to the kiosk", Duration::from_secs(10), traced);
        FileWatch { strace, log }
    }

    /// Stops tracing; returns every call that created, renamed or opened a file for writing.
    fn writes(mut self) -> Vec<String> {
        let _ = Command::new("kill").arg("-INT").arg(self.strace.id().to_string()).status();
        let _ = self.strace.wait();
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| {
                let creates = ["creat(", "mknod", "rename", "link(", "linkat(", "symlink", "mkdir", "truncate("].iter().any(|c| l.contains(c));
                let writes = (l.contains("open") && (l.contains("O_CREAT") || l.contains("O_WRONLY") || l.contains("O_RDWR") || l.contains("O_TRUNC")))
                    // Devices and kernel interfaces are not files on disk.
                    && !["\"/dev/", "\"/proc/", "\"/sys/", "\"/run/user/"].iter().any(|p| l.contains(p));
                (creates || writes) && !l.contains("= -1 E")
            })
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        let _ = self.strace.kill();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kiosk_window_shows_shared_images_and_the_pointer_and_writes_no_file() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let _display = DISPLAY.lock().await;
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "needs an X display: scripts/test.sh runs Xvfb and a window manager"
    );
    let dicom = dicom_dir();
    let WindowCall { turn, server, dr, laptop: _laptop, clip, kiosk } = window_call("kiosk-share-window.log").await;
    let mut consultant = Driver::sharing(&server, "dr.who", &dr, clip.path());
    consultant.wait_for("the share channel", 90, |v| (v["event"] == "share_open").then_some(())).await;
    // Let the window settle into the call before watching for files.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watch = FileWatch::start(&kiosk);
    let started = Instant::now();

    // The CT: the window shows its pixels at the viewer's place.
    let ct = dicom.join("CT_small.dcm");
    consultant.tell(json!({ "do": "share", "files": [ct] })).await;
    consultant.wait_for("the CT shown", 60, |v| kiosk_msg(v, "shown")).await;
    let (pixels, size) = expected(&ct, 0);
    let shot =
        shot_until("share-window-ct.png", "the CT in the window", move |p| matching(p, &pixels, size) > 0.95).await;
    assert_eq!(pointer_pixels(&shot, size, (0.25, 0.75)), 0, "no pointer before the consultant points");

    // The consultant points: a yellow ring where they point.
    consultant.tell(json!({ "do": "point", "x": 0.25, "y": 0.75 })).await;
    shot_until("share-window-pointer.png", "the pointer in the window", move |p| {
        pointer_pixels(p, size, (0.25, 0.75)) > 50
    })
    .await;

    // The consultant measures: the window draws the line in cyan and its length (issue #15).
    consultant.tell(json!({ "do": "measure", "x1": 0.2, "y1": 0.3, "x2": 0.8, "y2": 0.3 })).await;
    consultant.wait_for("the measurement", 30, |v| kiosk_msg(v, "measured")).await;
    shot_until("share-window-measure.png", "the measurement in the window", move |p| {
        measure_pixels(p, size, ((0.2, 0.3), (0.8, 0.3))) > 100
    })
    .await;
    consultant.tell(json!({ "do": "measure", "off": true })).await;

    // A multi-frame CT (12 slices of 64x64, a bone disk moving slice to slice), then slice 6: the
    // window shows that slice.
    let dir = tempfile::tempdir().expect("dir");
    let dose = dir.path().join("multiframe.dcm");
    std::fs::write(&dose, sc_e2e::dicom::ct(64, 0, 12, 12)).expect("write");
    consultant.tell(json!({ "do": "share", "files": [dose] })).await;
    consultant.wait_for("the multi-frame file", 60, |v| kiosk_msg(v, "done")).await;
    consultant.tell(json!({ "do": "slice", "frame": 5 })).await;
    consultant.wait_for("slice 6", 30, |v| kiosk_msg(v, "shown").filter(|m| m["view"]["frame"] == 5)).await;
    let (slice6, dose_size) = expected(&dose, 5);
    let (slice1, _) = expected(&dose, 0);
    assert_ne!(slice6, slice1, "the slices differ");
    let (s6, s1) = (slice6.clone(), slice1.clone());
    let shot = shot_until("share-window-slice.png", "slice 6 in the window", move |p| {
        matching(p, &s6, dose_size) > 0.95 && matching_where_they_differ(p, &s6, &s1, dose_size) > 0.9
    })
    .await;
    assert!(
        matching_where_they_differ(&shot, &slice1, &slice6, dose_size) < 0.1,
        "the window shows slice 6, not slice 1"
    );
    assert!(kiosk.log().contains("image share received"), "{}", kiosk.log());

    // Pictures: a PNG and a JPEG, checked by pixels against the image crate's own decode of them
    // (issue #15).
    let (pw, ph) = (96u32, 64u32);
    let picture = image::RgbImage::from_fn(pw, ph, |x, y| {
        image::Rgb([(x * 255 / pw) as u8, (y * 255 / ph) as u8, if (x / 16 + y / 16) % 2 == 0 { 40 } else { 220 }])
    });
    for (name, format) in [("picture.png", image::ImageFormat::Png), ("picture.jpg", image::ImageFormat::Jpeg)] {
        let path = dir.path().join(name);
        picture.save_with_format(&path, format).expect("write the picture");
        let expected = image::open(&path).expect("decode").to_rgb8().into_raw();
        consultant.tell(json!({ "do": "share", "files": [path] })).await;
        consultant.wait_for("the picture", 60, |v| kiosk_msg(v, "done")).await;
        shot_until(&format!("share-window-{name}.png"), "the picture in the window", move |p| {
            matching_rgb(p, &expected, (pw, ph)) > 0.95
        })
        .await;
    }

    // A colour Doppler loop (PALETTE COLOR, RLE, 6 frames at 10 frames a second): its colours as
    // DCMTK draws them, then playing as cine, then paused where it is (issue #15).
    let loop_file = dir.path().join("doppler.dcm");
    std::fs::write(&loop_file, sc_e2e::dicom::palette(sc_e2e::dicom::PaletteKind::RleDoppler, 6)).expect("write");
    let reference = crate::reference::dcmtk(&loop_file, crate::reference::Mode::Colour, &dir.path().join("dcmtk"))
        .expect("DCMTK renders the loop");
    let frames: Vec<Vec<u8>> = reference.into_iter().map(|p| p.data).collect();
    let loop_size = (64, 48);
    consultant.tell(json!({ "do": "share", "files": [loop_file] })).await;
    consultant.wait_for("the loop", 60, |v| kiosk_msg(v, "done")).await;
    let first = frames[0].clone();
    shot_until("share-window-doppler.png", "the Doppler loop's first frame in colour", move |p| {
        matching_rgb(p, &first, loop_size) > 0.95
    })
    .await;
    consultant.tell(json!({ "do": "play" })).await;
    consultant
        .wait_for("the loop playing", 30, |v| kiosk_msg(v, "shown").filter(|m| m["view"]["playing"] == true))
        .await;
    let seen = {
        let frames = frames.clone();
        tokio::task::spawn_blocking(move || {
            let path = artifacts_dir().join("share-window-cine.png");
            let mut seen = std::collections::BTreeSet::new();
            let until = Instant::now() + Duration::from_secs(30);
            for n in 0u64.. {
                if Instant::now() > until || seen.len() >= 3 {
                    break;
                }
                // Uneven gaps: a screenshot as slow as the loop's period would otherwise catch the
                // same frame every time.
                std::thread::sleep(Duration::from_millis(n * 37 % 170));
                screenshot(&path);
                if let Some(k) = (0..frames.len()).find(|&k| matching_rgb(&path, &frames[k], loop_size) > 0.95) {
                    seen.insert(k);
                }
            }
            seen
        })
        .await
        .expect("join")
    };
    assert!(seen.len() >= 3, "the window played the loop: frames seen {seen:?}");
    consultant.tell(json!({ "do": "play" })).await;
    let paused = consultant
        .wait_for("the loop paused", 30, |v| kiosk_msg(v, "shown").filter(|m| m["view"]["playing"] == false))
        .await;
    let still = frames[paused["view"]["frame"].as_u64().expect("frame") as usize].clone();
    let shot =
        shot_until("share-window-paused.png", "the paused frame", move |p| matching_rgb(p, &still, loop_size) > 0.95)
            .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    screenshot(&shot);
    let again = frames[paused["view"]["frame"].as_u64().expect("frame") as usize].clone();
    assert!(matching_rgb(&shot, &again, loop_size) > 0.95, "a paused loop stays on its frame");

    let writes = tokio::task::spawn_blocking(move || watch.writes()).await.expect("join");
    assert!(
        writes.is_empty(),
        "the kiosk wrote files while receiving and showing images ({:?}): {writes:#?}",
        started.elapsed()
    );
    consultant.tell(json!({ "do": "end" })).await;
    drop(kiosk);
    drop(turn);
}
