//! The kiosk's side of an image share, without I/O: messages from the data channel go in (with
//! the time), replies for the consultant come out, and [`Viewer::screen`] says what to draw.
//!
//! Files are assembled in memory, checked against the share limits before a byte is kept,
//! decoded as each completes, and grouped into stacks: a multi-frame file is one stack, a run of
//! single-frame DICOM files of one size in one share is one stack (a series, in the order sent),
//! and each picture is its own. The consultant drives the view; the nurse can only reset it.

use crate::{Decoder, Image, InProcess, Limits, Preset, Rendered, Source, Window};
use sc_proto::share::{Chunk, FromKiosk, PreviewPng, StackInfo, ToKiosk, View, WindowChoice, PREVIEW_SIZE};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much one call's shares may ask of the laptop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimits {
    /// Files in one share.
    pub max_files: u32,
    /// Bytes in one share.
    pub max_share_bytes: u64,
    /// Decoded pixels held at once, over every stack (each a 4-byte value).
    pub max_held_pixels: u64,
    /// A share with nothing new for this long is given up.
    pub stall: Duration,
    /// Limits on each file.
    pub decode: Limits,
}

impl Default for ShareLimits {
    /// 1,000 files and 256 MiB a share, 96 Mpx held (384 MiB), 30 s without data; 64 MiB a file.
    fn default() -> Self {
        ShareLimits {
            max_files: 1000,
            max_share_bytes: 256 << 20,
            max_held_pixels: 96 << 20,
            stall: Duration::from_secs(30),
            decode: Limits::default(),
        }
    }
}

/// What the viewer shows: the rendered frame and how to place it.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Display pixels (grey, or RGB for colour pictures).
    pub pixels: Arc<Rendered>,
    /// Magnification (1 = fit).
    pub zoom: f32,
    /// The image point at the viewer's centre, as a fraction of the image from its centre.
    pub pan: [f32; 2],
    /// The consultant's pointer, in image fractions from the top left.
    pub pointer: Option<[f32; 2]>,
    /// The consultant's measurement: a line (image fractions) and what to write beside it.
    pub measure: Option<([[f32; 2]; 2], String)>,
    /// One line for the prisoner and nurse: which image and slice, which window.
    pub caption: String,
}

/// Bytes received between progress replies.
const PROGRESS_EVERY: u64 = 256 << 10;
/// Zoom range.
const ZOOM: (f32, f32) = (1.0, 16.0);
/// How fast a multi-frame file without its own rate plays.
pub const DEFAULT_FRAME_TIME: Duration = Duration::from_millis(100);
/// The fastest a file may ask to play (100 frames a second); a faster rate is played at this.
const MIN_FRAME_TIME: Duration = Duration::from_millis(10);

struct Stack {
    share: u32,
    first_file: u32,
    source: Source,
    width: u32,
    height: u32,
    modality: Option<String>,
    default_window: Window,
    /// Each frame: its image and the frame's index in it.
    frames: Vec<(Arc<Image>, usize)>,
    /// The time between frames when it plays.
    frame_time: Duration,
    /// Millimetres between pixel centres (rows, columns), when the file says.
    pixel_spacing: Option<[f64; 2]>,
    /// Single-frame DICOM files of the current share may still join it.
    series: bool,
}

struct Incoming {
    share: u32,
    sizes: Vec<u64>,
    /// Which files travel deflated (empty: none).
    deflate: Vec<bool>,
    /// The current file's length on the way: its size, or for a deflated file the length its
    /// `Deflated` message gave (`None` until then).
    wire: Option<u64>,
    /// The sizes of the files already complete.
    done: u64,
    file: usize,
    buf: Vec<u8>,
    received: u64,
    total: u64,
    reported: u64,
    shown: u32,
    failed: u32,
    last_activity: Instant,
}

type RenderKey = (usize, usize, u64, u64);

/// A stack playing as a loop: frame `from` was shown at `since`.
#[derive(Debug, Clone, Copy)]
struct Playback {
    since: Instant,
    from: u32,
}

/// One call's images.
pub struct Viewer {
    limits: ShareLimits,
    decoder: Arc<dyn Decoder>,
    incoming: Option<Incoming>,
    stacks: Vec<Stack>,
    held_pixels: u64,
    view: View,
    pointer: Option<[f32; 2]>,
    measure: Option<[[f32; 2]; 2]>,
    notice: Option<String>,
    rendered: Option<(RenderKey, Arc<Rendered>)>,
    playback: Option<Playback>,
}

impl std::fmt::Debug for Viewer {
    // No pixels and no sizes that could identify a study: counts only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Viewer({} stacks, receiving: {})", self.stacks.len(), self.incoming.is_some())
    }
}

impl Viewer {
    /// An empty viewer, decoding in this process.
    pub fn new(limits: ShareLimits) -> Self {
        Viewer {
            limits,
            decoder: Arc::new(InProcess),
            incoming: None,
            stacks: Vec::new(),
            held_pixels: 0,
            view: View::default(),
            pointer: None,
            measure: None,
            notice: None,
            rendered: None,
            playback: None,
        }
    }

    /// The same viewer, decoding each file with `decoder` (the kiosk's is a helper process).
    pub fn with_decoder(mut self, decoder: Arc<dyn Decoder>) -> Self {
        self.decoder = decoder;
        self
    }

    /// A text message from the consultant.
    pub fn on_text(&mut self, now: Instant, text: &str) -> Vec<FromKiosk> {
        let out = self.handle_text(now, text);
        self.with_preview(out)
    }

    fn handle_text(&mut self, now: Instant, text: &str) -> Vec<FromKiosk> {
        match serde_json::from_str::<ToKiosk>(text) {
            Ok(ToKiosk::Share { share, sizes, deflate }) => self.start_share(now, share, sizes, deflate),
            Ok(ToKiosk::Deflated { share, file, bytes }) => self.deflated_length(now, share, file, bytes),
            Ok(ToKiosk::Cancel { share }) => match &self.incoming {
                Some(i) if i.share == share => self.fail_share("The consultant stopped sending images.".into()),
                _ => Vec::new(),
            },
            Ok(ToKiosk::View(view)) => self.apply_view(now, view),
            Ok(ToKiosk::Pointer { at }) => {
                self.pointer =
                    at.filter(|p| p.iter().all(|v| v.is_finite())).map(|[x, y]| [x.clamp(0.0, 1.0), y.clamp(0.0, 1.0)]);
                Vec::new()
            }
            Ok(ToKiosk::Measure { line }) => self.measure_line(line),
            Ok(ToKiosk::Clear) => {
                self.measure = None;
                self.playback = None;
                self.stacks.clear();
                self.held_pixels = 0;
                self.rendered = None;
                self.pointer = None;
                self.view = View::default();
                vec![FromKiosk::Cleared, self.stacks_message()]
            }
            Ok(_) => vec![FromKiosk::Error { message: "a message this laptop does not know".into() }],
            Err(e) => vec![FromKiosk::Error { message: format!("a garbled message was ignored: {e}") }],
        }
    }

    /// A binary message (a file chunk) from the consultant.
    pub fn on_binary(&mut self, now: Instant, message: &[u8]) -> Vec<FromKiosk> {
        let out = self.handle_binary(now, message);
        self.with_preview(out)
    }

    fn handle_binary(&mut self, now: Instant, message: &[u8]) -> Vec<FromKiosk> {
        let chunk = match Chunk::parse(message) {
            Ok(c) => c,
            Err(e) if self.incoming.is_some() => return self.fail_share(format!("The transfer was garbled ({e}).")),
            Err(e) => return vec![FromKiosk::Error { message: e.to_string() }],
        };
        let Some(incoming) = self.incoming.as_mut() else { return Vec::new() };
        if chunk.share != incoming.share {
            // Left over from a cancelled or replaced share: already in flight, not an error.
            return Vec::new();
        }
        let Some(expected) = incoming.wire else {
            let message = format!("The transfer was garbled (file {} arrived before its length).", chunk.file + 1);
            return self.fail_share(message);
        };
        let have = incoming.buf.len() as u64;
        if chunk.file as usize != incoming.file
            || u64::from(chunk.offset) != have
            || have + chunk.data.len() as u64 > expected
        {
            let message = format!(
                "The transfer was garbled (file {} at byte {}, expected file {} at byte {have}).",
                chunk.file + 1,
                chunk.offset,
                incoming.file + 1
            );
            return self.fail_share(message);
        }
        incoming.buf.extend_from_slice(chunk.data);
        incoming.received += chunk.data.len() as u64;
        incoming.last_activity = now;
        let mut out = Vec::new();
        self.complete_files(&mut out);
        if let Some(i) = self.incoming.as_mut() {
            if i.received - i.reported >= PROGRESS_EVERY {
                i.reported = i.received;
                out.push(FromKiosk::Progress {
                    share: i.share,
                    received: i.received,
                    total: i.total,
                    files: i.file as u32,
                });
            }
        }
        out
    }

    /// Time passes: a playing stack moves to the frame due now, and a share with nothing new for
    /// [`ShareLimits::stall`] is given up.
    pub fn on_tick(&mut self, now: Instant) -> Vec<FromKiosk> {
        if let (Some(p), Some(stack)) = (self.playback, self.stacks.get(self.view.stack as usize)) {
            let n = stack.frames.len().max(1) as u128;
            let elapsed = now.saturating_duration_since(p.since).as_nanos() / stack.frame_time.as_nanos().max(1);
            self.view.frame = ((u128::from(p.from) + elapsed) % n) as u32;
        }
        match &self.incoming {
            Some(i) if now.saturating_duration_since(i.last_activity) >= self.limits.stall => {
                let message = format!(
                    "The transfer stalled: nothing arrived for {} s; {} of {} files arrived.",
                    self.limits.stall.as_secs(),
                    i.file,
                    i.sizes.len()
                );
                self.fail_share(message)
            }
            _ => Vec::new(),
        }
    }

    /// The data channel closed: a share under way was cut.
    pub fn on_channel_closed(&mut self) -> Vec<FromKiosk> {
        self.pointer = None;
        match &self.incoming {
            Some(i) => {
                let message = format!("The transfer was cut: {} of {} files arrived.", i.file, i.sizes.len());
                self.fail_share(message)
            }
            None => Vec::new(),
        }
    }

    /// When [`on_tick`](Self::on_tick) next has something to do for playback (the next frame is
    /// due), or `None` while nothing plays.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let p = self.playback?;
        let step = self.stacks.get(self.view.stack as usize)?.frame_time;
        let shown = now.saturating_duration_since(p.since).as_nanos() / step.as_nanos().max(1);
        let next = u32::try_from(shown + 1).ok()?;
        Some(p.since + step.checked_mul(next)?)
    }

    /// Whether a stack is playing.
    pub fn playing(&self) -> bool {
        self.playback.is_some()
    }

    /// The nurse pauses a playing stack on the frame shown (the consultant is told).
    pub fn pause(&mut self) -> Vec<FromKiosk> {
        if self.playback.take().is_none() {
            return Vec::new();
        }
        self.view.playing = false;
        let out = vec![self.shown(true)];
        self.with_preview(out)
    }

    /// The nurse resets the view: the file's own window, no zoom or pan, no pointer, not playing.
    pub fn reset(&mut self) -> Vec<FromKiosk> {
        if self.stacks.is_empty() {
            return Vec::new();
        }
        self.playback = None;
        self.view = View { stack: self.view.stack, frame: self.view.frame, ..View::default() };
        self.pointer = None;
        self.measure = None;
        let out = vec![self.shown(true)];
        self.with_preview(out)
    }

    /// Bytes received and announced, while a share is under way.
    pub fn receiving(&self) -> Option<(u64, u64)> {
        self.incoming.as_ref().map(|i| (i.received, i.total))
    }

    /// How many stacks are held.
    pub fn stacks(&self) -> usize {
        self.stacks.len()
    }

    /// Frames held over all stacks.
    pub fn frames(&self) -> usize {
        self.stacks.iter().map(|s| s.frames.len()).sum()
    }

    /// The view being shown.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The last thing the nurse should know about the images (a failure, a cut transfer).
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// What to draw, or `None` before any image arrived.
    pub fn screen(&mut self) -> Option<Screen> {
        let (si, fi) = (self.view.stack as usize, self.view.frame as usize);
        let window = self.window();
        let stack = self.stacks.get(si)?;
        let key = (si, fi, window.center.to_bits(), window.width.to_bits());
        let pixels = match &self.rendered {
            Some((k, p)) if *k == key => p.clone(),
            _ => {
                let (image, frame) = stack.frames.get(fi)?;
                let p = Arc::new(image.render(*frame, window)?);
                self.rendered = Some((key, p.clone()));
                p
            }
        };
        Some(Screen {
            width: stack.width,
            height: stack.height,
            pixels,
            zoom: self.view.zoom,
            pan: [self.view.pan_x, self.view.pan_y],
            pointer: self.pointer,
            measure: self.measure.map(|line| (line, self.measured(line).1)),
            caption: self.caption(),
        })
    }

    /// The consultant measures (or takes the measurement away); both screens show the result.
    fn measure_line(&mut self, line: Option<[[f32; 2]; 2]>) -> Vec<FromKiosk> {
        if self.stacks.is_empty() {
            return vec![FromKiosk::Error { message: "no image to measure on yet".into() }];
        }
        let line = match line {
            Some(ends) if ends.iter().flatten().all(|v| v.is_finite()) => {
                Some(ends.map(|[x, y]| [x.clamp(0.0, 1.0), y.clamp(0.0, 1.0)]))
            }
            Some(_) => {
                return vec![FromKiosk::Error { message: "a measurement with a number that is not finite".into() }]
            }
            None => None,
        };
        self.measure = line;
        let (mm, label) = line.map_or((None, String::new()), |l| self.measured(l));
        vec![FromKiosk::Measured { line, mm, label }]
    }

    /// The length of `line` on the stack shown, in millimetres from its pixel spacing, and the
    /// words for it.
    fn measured(&self, [[x1, y1], [x2, y2]]: [[f32; 2]; 2]) -> (Option<f64>, String) {
        let Some(stack) = self.stacks.get(self.view.stack as usize) else { return (None, String::new()) };
        let Some([row, column]) = stack.pixel_spacing else {
            return (None, "no scale: the file gives no pixel spacing".into());
        };
        let dx = f64::from(x2 - x1) * f64::from(stack.width) * column;
        let dy = f64::from(y2 - y1) * f64::from(stack.height) * row;
        let mm = dx.hypot(dy);
        (Some(mm), format!("{mm:.1} mm"))
    }

    /// After a reply that says what is shown, a preview of it follows.
    fn with_preview(&mut self, mut out: Vec<FromKiosk>) -> Vec<FromKiosk> {
        if out.iter().any(|m| matches!(m, FromKiosk::Shown { .. })) {
            out.extend(self.preview());
        }
        out
    }

    /// The frame shown, at the window shown, scaled to fit [`PREVIEW_SIZE`], as a PNG.
    fn preview(&mut self) -> Option<FromKiosk> {
        let screen = self.screen()?;
        let (w, h) = (screen.width, screen.height);
        let scale = (f64::from(PREVIEW_SIZE) / f64::from(w.max(h))).min(1.0);
        let (pw, ph) = (((f64::from(w) * scale).round() as u32).max(1), ((f64::from(h) * scale).round() as u32).max(1));
        let filter = image::imageops::FilterType::Triangle;
        let dynamic = match &*screen.pixels {
            Rendered::Grey(p) => image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, p.clone())?),
            Rendered::Rgb(p) => image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, p.clone())?),
        };
        let small = if (pw, ph) == (w, h) { dynamic } else { dynamic.resize_exact(pw, ph, filter) };
        let mut png = Vec::new();
        small.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).ok()?;
        Some(FromKiosk::Preview {
            stack: self.view.stack,
            frame: self.view.frame,
            width: pw,
            height: ph,
            png: PreviewPng::new(&png),
        })
    }

    fn caption(&self) -> String {
        let Some(stack) = self.stacks.get(self.view.stack as usize) else { return String::new() };
        let mut parts = vec![format!("Image {} of {}", self.view.stack + 1, self.stacks.len())];
        if stack.frames.len() > 1 {
            parts.push(format!("slice {} of {}", self.view.frame + 1, stack.frames.len()));
            if self.playback.is_some() {
                parts.push(format!("playing, {:.0} frames/s", 1.0 / stack.frame_time.as_secs_f64()));
            }
        }
        if stack.source == Source::Dicom {
            parts.push(stack.modality.clone().unwrap_or_else(|| "DICOM".into()));
        }
        // A window means nothing to colour: its pixels are shown as they are.
        let grey =
            stack.frames.first().is_some_and(|(image, f)| matches!(image.frames.get(*f), Some(crate::Frame::Grey(_))));
        if stack.source == Source::Dicom && grey {
            let w = self.window();
            let name = match &self.view.window {
                WindowChoice::Preset { name } => format!(" ({})", name.replace('_', " ")),
                _ => String::new(),
            };
            parts.push(format!("window L {:.0} W {:.0}{name}", w.center, w.width));
        }
        parts.join("  ·  ")
    }

    fn window(&self) -> Window {
        let own = self.stacks.get(self.view.stack as usize).map_or(Window::linear(127.5, 256.0), |s| s.default_window);
        match &self.view.window {
            WindowChoice::Preset { name } => Preset::from_name(name).map_or(own, Preset::window),
            WindowChoice::Custom { center, width } => Window::linear(*center, *width),
            _ => own,
        }
    }

    fn shown(&self, by_nurse: bool) -> FromKiosk {
        let w = self.window();
        FromKiosk::Shown { view: self.view.clone(), center: w.center, width: w.width, by_nurse }
    }

    fn apply_view(&mut self, now: Instant, mut view: View) -> Vec<FromKiosk> {
        if !(view.zoom.is_finite() && view.pan_x.is_finite() && view.pan_y.is_finite()) {
            return vec![FromKiosk::Error { message: "a view with a number that is not finite".into() }];
        }
        match &view.window {
            WindowChoice::Preset { name } if Preset::from_name(name).is_none() => {
                return vec![FromKiosk::Error { message: "an unknown window preset".into() }];
            }
            WindowChoice::Custom { center, width } if !(center.is_finite() && width.is_finite() && *width >= 1.0) => {
                return vec![FromKiosk::Error { message: "a window whose centre or width is not usable".into() }];
            }
            _ => {}
        }
        let Some(last) = self.stacks.len().checked_sub(1) else {
            return vec![FromKiosk::Error { message: "no image to show yet".into() }];
        };
        view.stack = view.stack.min(last as u32);
        let frames = self.stacks[view.stack as usize].frames.len();
        view.frame = view.frame.min(frames.saturating_sub(1) as u32);
        view.zoom = view.zoom.clamp(ZOOM.0, ZOOM.1);
        view.pan_x = view.pan_x.clamp(-0.5, 0.5);
        view.pan_y = view.pan_y.clamp(-0.5, 0.5);
        // Only a stack of several frames plays. The consultant's page knows the frame a loop
        // started from, not the one showing: a view naming that frame changes something else
        // (the window, the zoom, play or pause) and the loop goes on, or stops, where it is; a
        // view naming another frame goes there.
        view.playing &= frames > 1;
        if view.stack != self.view.stack {
            // A measurement belongs to the image it was made on.
            self.measure = None;
        }
        let same_loop = self
            .playback
            .filter(|p| view.stack == self.view.stack && (view.frame == p.from || view.frame == self.view.frame));
        if let Some(p) = same_loop {
            view.frame = self.view.frame;
            self.playback = view.playing.then_some(p);
        } else {
            self.playback = view.playing.then_some(Playback { since: now, from: view.frame });
        }
        self.view = view;
        vec![self.shown(false)]
    }

    /// A deflated file's length on the way, just before its chunks.
    fn deflated_length(&mut self, now: Instant, share: u32, file: u32, bytes: u64) -> Vec<FromKiosk> {
        let max = self.limits.decode.max_file_bytes as u64;
        let Some(i) = self.incoming.as_mut().filter(|i| i.share == share) else { return Vec::new() };
        let expected = i.deflate.get(i.file).copied().unwrap_or(false) && i.wire.is_none() && file as usize == i.file;
        // A deflated stream is at most a little longer than what it holds; more is not a file.
        if !expected || bytes > max.saturating_add(max / 64).saturating_add(1024) {
            let message = format!("The transfer was garbled (an unexpected length for file {}).", file + 1);
            return self.fail_share(message);
        }
        i.wire = Some(bytes);
        i.last_activity = now;
        let mut out = Vec::new();
        // An empty stream completes at once.
        self.complete_files(&mut out);
        out
    }

    fn start_share(&mut self, now: Instant, share: u32, sizes: Vec<u64>, deflate: Vec<bool>) -> Vec<FromKiosk> {
        let mut out = match &self.incoming {
            Some(i) => {
                let previous = i.share;
                self.incoming = None;
                vec![FromKiosk::ShareFailed { share: previous, message: "Replaced by a newer share.".into() }]
            }
            None => Vec::new(),
        };
        let total: u64 = sizes.iter().fold(0u64, |a, &s| a.saturating_add(s));
        let l = &self.limits;
        let refusal = if sizes.is_empty() {
            Some("The share has no files.".to_owned())
        } else if !deflate.is_empty() && deflate.len() != sizes.len() {
            Some("The share was garbled (its files' encodings do not match its files).".to_owned())
        } else if sizes.len() > l.max_files as usize {
            Some(format!("Too many files: {} (this laptop takes up to {} at a time).", sizes.len(), l.max_files))
        } else if let Some((n, s)) = sizes.iter().enumerate().find(|(_, &s)| s > l.decode.max_file_bytes as u64) {
            Some(format!(
                "File {} is too large: {} MiB (this laptop takes up to {} MiB a file).",
                n + 1,
                s >> 20,
                l.decode.max_file_bytes >> 20
            ))
        } else if total > l.max_share_bytes {
            Some(format!(
                "The share is too large: {} MiB (this laptop takes up to {} MiB at a time).",
                total >> 20,
                l.max_share_bytes >> 20
            ))
        } else {
            None
        };
        if let Some(message) = refusal {
            self.notice = Some(format!("Images could not be received: {message}"));
            out.push(FromKiosk::ShareFailed { share, message });
            return out;
        }
        self.notice = None;
        // Single-frame files of an earlier share never join this share's series.
        for s in &mut self.stacks {
            s.series = false;
        }
        let wire = wire_length(&sizes, &deflate, 0);
        self.incoming = Some(Incoming {
            share,
            sizes,
            deflate,
            wire,
            done: 0,
            file: 0,
            buf: Vec::new(),
            received: 0,
            total,
            reported: 0,
            shown: 0,
            failed: 0,
            last_activity: now,
        });
        out.push(FromKiosk::Accepted { share });
        // Empty files complete at once.
        self.complete_files(&mut out);
        out
    }

    /// Decodes every file that is whole, and finishes the share after its last.
    fn complete_files(&mut self, out: &mut Vec<FromKiosk>) {
        loop {
            let Some(i) = self.incoming.as_mut() else { return };
            if i.file >= i.sizes.len() {
                out.push(FromKiosk::Progress {
                    share: i.share,
                    received: i.received,
                    total: i.total,
                    files: i.file as u32,
                });
                out.push(FromKiosk::Done { share: i.share, shown: i.shown, failed: i.failed });
                let failed = i.failed;
                self.incoming = None;
                if failed > 0 && self.notice.is_none() {
                    self.notice = Some(format!("{failed} file(s) could not be shown."));
                }
                return;
            }
            match i.wire {
                Some(wire) if i.buf.len() as u64 >= wire => {}
                _ => return,
            }
            let bytes = std::mem::take(&mut i.buf);
            let (share, file, size) = (i.share, i.file as u32, i.sizes[i.file]);
            let deflated = i.deflate.get(i.file).copied().unwrap_or(false);
            i.file += 1;
            i.wire = wire_length(&i.sizes, &i.deflate, i.file);
            // Progress counts the files' own bytes: a deflated file counts whole once it is in.
            i.done += size;
            i.received = i.done;
            i.reported = i.received;
            let added = if deflated {
                inflate(&bytes, size).and_then(|inflated| self.add_file(share, file, &inflated))
            } else {
                self.add_file(share, file, &bytes)
            };
            match added {
                Ok(new_stack) => {
                    if let Some(i) = self.incoming.as_mut() {
                        i.shown += 1;
                    }
                    out.push(self.stacks_message());
                    // A share's first image is shown as soon as it is decoded.
                    if new_stack && self.stacks.iter().filter(|s| s.share == share).count() == 1 {
                        self.playback = None;
                        self.measure = None;
                        self.view = View { stack: (self.stacks.len() - 1) as u32, ..View::default() };
                        self.pointer = None;
                        out.push(self.shown(false));
                    }
                }
                Err(message) => {
                    if let Some(i) = self.incoming.as_mut() {
                        i.failed += 1;
                    }
                    self.notice = Some(format!("A file could not be shown: {message}"));
                    out.push(FromKiosk::FileFailed { share, file, message });
                }
            }
            let Some(i) = self.incoming.as_ref() else { return };
            out.push(FromKiosk::Progress {
                share: i.share,
                received: i.received,
                total: i.total,
                files: i.file as u32,
            });
        }
    }

    /// Decodes a whole file into the stacks; `Ok(true)` when it started a new stack.
    fn add_file(&mut self, share: u32, file: u32, bytes: &[u8]) -> Result<bool, String> {
        let image = self.decoder.decode(bytes, &self.limits.decode).map_err(|e| e.to_string())?;
        let pixels = u64::from(image.width) * u64::from(image.height) * image.frames.len() as u64;
        if self.held_pixels + pixels > self.limits.max_held_pixels {
            return Err(
                "the laptop holds as many images as it can; clear the images shown so far and share again".into()
            );
        }
        self.held_pixels += pixels;
        let single_dicom = image.source == Source::Dicom && image.frames.len() == 1;
        let image = Arc::new(image);
        if single_dicom {
            if let Some(s) = self.stacks.last_mut().filter(|s| {
                s.series
                    && s.share == share
                    && s.width == image.width
                    && s.height == image.height
                    && s.modality == image.modality
            }) {
                s.frames.push((image, 0));
                return Ok(false);
            }
        }
        self.stacks.push(Stack {
            share,
            first_file: file,
            source: image.source,
            width: image.width,
            height: image.height,
            modality: image.modality.clone(),
            default_window: image.default_window,
            frame_time: image.frame_time.unwrap_or(DEFAULT_FRAME_TIME).max(MIN_FRAME_TIME),
            pixel_spacing: image.pixel_spacing,
            frames: (0..image.frames.len()).map(|f| (image.clone(), f)).collect(),
            series: single_dicom,
        });
        Ok(true)
    }

    fn stacks_message(&self) -> FromKiosk {
        FromKiosk::Stacks {
            stacks: self
                .stacks
                .iter()
                .map(|s| StackInfo {
                    frames: s.frames.len() as u32,
                    width: s.width,
                    height: s.height,
                    kind: match s.source {
                        Source::Dicom => "dicom",
                        Source::Png => "png",
                        _ => "jpeg",
                    }
                    .into(),
                    modality: s.modality.clone(),
                    window_center: s.default_window.center,
                    window_width: s.default_window.width,
                    share: s.share,
                    frame_ms: u32::try_from(s.frame_time.as_millis()).unwrap_or(u32::MAX),
                    pixel_spacing: s.pixel_spacing,
                    first_file: s.first_file,
                })
                .collect(),
        }
    }

    fn fail_share(&mut self, message: String) -> Vec<FromKiosk> {
        let Some(i) = self.incoming.take() else { return Vec::new() };
        self.notice = Some(message.clone());
        vec![FromKiosk::ShareFailed { share: i.share, message }]
    }
}

/// File `file`'s length on the way, when known before its chunks: its size, unless it is deflated.
fn wire_length(sizes: &[u64], deflate: &[bool], file: usize) -> Option<u64> {
    let size = *sizes.get(file)?;
    (!deflate.get(file).copied().unwrap_or(false)).then_some(size)
}

/// A deflated file's bytes, which must be exactly `size` of them (the share announced it, and
/// the limits were checked against it): more is cut off unread, so a deflate bomb costs nothing.
fn inflate(stream: &[u8], size: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let damaged = || "its compression for the way is damaged".to_owned();
    let mut out = Vec::with_capacity(usize::try_from(size).map_err(|_| damaged())?);
    flate2::read::ZlibDecoder::new(stream).take(size.saturating_add(1)).read_to_end(&mut out).map_err(|_| damaged())?;
    if out.len() as u64 != size {
        return Err(damaged());
    }
    Ok(out)
}
