//! VP8 through libvpx (vpx-rs): a real-time encoder that can be told to make a keyframe (the
//! browser asks with PLI/FIR), and a decoder that copies each picture out as tight I420.

use crate::frame::I420Frame;
use crate::Error;
use std::num::NonZero;
use vpx_rs::enc::{CodecId, EncoderFrameFlags, EncodingDeadline, KeyFrameMode, Packet, RateControl, Timebase};
use vpx_rs::{DecodedImageData, Decoder, DecoderConfig, Encoder, EncoderConfig, ImageFormat, YUVImageData};

fn codec(e: impl std::fmt::Display) -> Error {
    Error::Codec(e.to_string())
}

/// A VP8 encoder for one call. Its clock is in milliseconds, so frames skipped to lower the
/// frame rate are seen by its rate control as a lower rate, not as slow motion.
pub(crate) struct Vp8Encoder {
    enc: Encoder<u8>,
    width: u32,
    height: u32,
    fps: u32,
    kbps: u32,
}

/// The largest picture (pixels) the denoiser runs at its strongest for: the rungs a poor link
/// gets (`adapt::LADDER`'s 320x240 and 160x120), whose frames are a few hundred bytes. A frame of
/// the camera clip at libvpx's coarsest quantizer takes ~530 bytes at 320x240 with the adaptive
/// denoiser, so at a poor link's rate libvpx dropped frames to keep to it: at 67 kbit/s, 20 fps
/// (the poor profile's video beside its parity packets) 430 of 540 were encoded, 499 at the
/// strongest (issue #12: the consultant got 14.5-17.5 fps of the kiosk there). Larger pictures
/// are sent on links with room for their detail, and libvpx's adaptive mode keeps it.
const STRONG_DENOISE_UP_TO_PIXELS: u32 = 320 * 240;

/// Whether the denoiser runs at its strongest for pictures of `width` x `height`.
fn strong_denoise(width: u32, height: u32) -> bool {
    width * height <= STRONG_DENOISE_UP_TO_PIXELS
}

/// Tells the encoder its denoiser's strength.
fn set_denoise(enc: &mut Encoder<u8>, strong: bool) -> Result<(), Error> {
    use vpx_rs::enc::ctrl::Vp8NoiseSensitivity::{Adaptive, OnYuvAggressive};
    let level = if strong { OnYuvAggressive } else { Adaptive };
    enc.codec_control_set(vpx_rs::enc::ctrl::EncoderControlSet::Vp8NoiseSensitivity(level)).map_err(codec)
}

/// One encoded frame.
#[derive(Debug, Clone)]
pub(crate) struct EncodedFrame {
    pub(crate) data: Vec<u8>,
    pub(crate) key: bool,
}

/// The longest time between keyframes the peer did not ask for.
const KEYFRAME_EVERY_SECS: u32 = 100;

/// The most a keyframe may take, in percent of a frame's share of the bitrate: libwebrtc's rule
/// (half the optimal buffer's worth of frames, at least three frames), so a keyframe leaves in
/// about a third of a second on any rung instead of as long as libvpx likes.
fn max_intra_pct(fps: u32) -> u32 {
    (600 / 2 * fps / 10).max(300)
}

/// Tells the encoder [`max_intra_pct`] for `fps`.
fn cap_keyframes(enc: &mut Encoder<u8>, fps: u32) -> Result<(), Error> {
    enc.codec_control_set(vpx_rs::enc::ctrl::EncoderControlSet::MaxIntraBitratePct(max_intra_pct(fps))).map_err(codec)
}

fn config(width: u32, height: u32, fps: u32, kbps: u32) -> Result<EncoderConfig<u8>, Error> {
    let ms = NonZero::new(1000).ok_or_else(|| codec("timebase"))?;
    let one = NonZero::new(1).ok_or_else(|| codec("timebase"))?;
    let mut cfg = EncoderConfig::<u8>::new(
        CodecId::VP8,
        width,
        height,
        Timebase { num: one, den: ms },
        RateControl::ConstantBitRate(kbps),
    )
    .map_err(codec)?;
    // Real time: no look-ahead, drop frames rather than lag. Keyframes when the peer asks (a PLI)
    // or the size changes, else only every 100 s (libwebrtc's 3000 frames; it was every 10 s): a
    // keyframe is several times a frame's share of the link and holds the frames behind it (prison
    // profile, 120 s: 14 keyframes sent before, 8 after, all at rung changes; issue #12).
    cfg.lag_in_frames = 0;
    cfg.threads = 2;
    cfg.kf_mode = KeyFrameMode::Auto { min_dist: 0, max_dist: fps.max(1) * KEYFRAME_EVERY_SECS };
    cfg.rc_dropframe_thresh = 25;
    // A one-second rate buffer and little overshoot, as libwebrtc sets for real-time VP8. libvpx's
    // defaults (a 6 s buffer) let it overshoot for seconds: measured on the camera clip at 320x240,
    // 2-3x the target (250 kbit/s set, 600-700 sent), which flooded a 512 kbit/s prison link.
    cfg.rc_buf_sz = std::time::Duration::from_millis(1000);
    cfg.rc_buf_initial_sz = std::time::Duration::from_millis(500);
    cfg.rc_buf_optimal_sz = std::time::Duration::from_millis(600);
    cfg.rc_undershoot_pct = 100;
    cfg.rc_overshoot_pct = 15;
    Ok(cfg)
}

impl Vp8Encoder {
    pub(crate) fn new(width: u32, height: u32, fps: u32, kbps: u32) -> Result<Self, Error> {
        let mut enc = Encoder::new(config(width, height, fps, kbps)?).map_err(codec)?;
        // Speed over compression: two cores also run the decoder, audio and the page.
        enc.codec_control_set(vpx_rs::enc::ctrl::EncoderControlSet::CpuUsed(10)).map_err(codec)?;
        // The denoiser, as libwebrtc sets it for a camera on x86 (adaptive: it follows the noise
        // it measures), at its strongest when frames are small: at a poor link's rate a camera's
        // sensor noise otherwise takes the bits, and libvpx drops frames to stay within them (the
        // camera clip at 480x360 and 150 kbit/s: 22.5 frames a second without, 30 with; issue #12).
        set_denoise(&mut enc, strong_denoise(width, height))?;
        cap_keyframes(&mut enc, fps)?;
        Ok(Vp8Encoder { enc, width, height, fps, kbps })
    }

    /// The size frames must now have.
    pub(crate) fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Changes the target bitrate, frame rate and size (no new stream: the packets go on as
    /// before). Returns whether the size changed (the caller then sends a keyframe).
    ///
    /// A new size is a new libvpx encoder, as libwebrtc initialises its encoder again at each new
    /// resolution. Told a smaller size than it was created at, libvpx's VP8 encoder kept coding at
    /// a loss: created at 640x480 and told 320x240 at 20 fps and 60 kbit/s, it dropped a fifth of
    /// the camera clip's frames, where one created at 320x240 dropped none (issue #12: on the poor
    /// profile the consultant saw 16-18 frames a second of the kiosk's 20, Chromium's pair 28).
    /// Its first frame is a keyframe, which a new size needs anyway.
    pub(crate) fn reconfigure(&mut self, width: u32, height: u32, fps: u32, kbps: u32) -> Result<bool, Error> {
        let (width, height) = (width.max(2) & !1, height.max(2) & !1);
        if (width, height, fps, kbps) == (self.width, self.height, self.fps, self.kbps) {
            return Ok(false);
        }
        if (width, height) != (self.width, self.height) {
            *self = Vp8Encoder::new(width, height, fps, kbps)?;
            return Ok(true);
        }
        self.enc.set_config(&config(width, height, fps, kbps)?).map_err(codec)?;
        if fps != self.fps {
            cap_keyframes(&mut self.enc, fps)?;
        }
        (self.fps, self.kbps) = (fps, kbps);
        Ok(false)
    }

    /// Encodes `frame` (of [`Vp8Encoder::size`]) captured at `at_ms` on the call's clock.
    ///
    /// libvpx is told each frame lasts one period of the configured frame rate, as libwebrtc
    /// tells it, whatever the gap since the last frame: it derives its frame rate, and so each
    /// frame's share of the bitrate, from where one frame's duration ends and the next one's does.
    /// Given the gap before each frame instead, a 20 fps rung taken from a 30 fps camera (gaps of
    /// 33 and 67 ms in turn) looked to it like frames 0 and 100 ms long, and it sent twice its
    /// bitrate (issue #12: ~500 kbit/s for 250 on the prison link, which then overflowed).
    pub(crate) fn encode(&mut self, frame: &I420Frame, keyframe: bool, at_ms: i64) -> Result<Vec<EncodedFrame>, Error> {
        if frame.width() != self.width || frame.height() != self.height {
            return Err(codec(format!(
                "frame is {}x{}, encoder {}x{}",
                frame.width(),
                frame.height(),
                self.width,
                self.height
            )));
        }
        let image =
            YUVImageData::from_raw_data(ImageFormat::I420, self.width as usize, self.height as usize, frame.data())
                .map_err(codec)?;
        let flags = if keyframe { EncoderFrameFlags::FORCE_KF } else { EncoderFrameFlags::empty() };
        let ms = u64::from(1000 / self.fps.max(1)).max(1);
        let packets = self.enc.encode(at_ms, ms, image, EncodingDeadline::Realtime, flags).map_err(codec)?;
        Ok(packets
            .filter_map(|p| match p {
                Packet::CompressedFrame(f) => Some(EncodedFrame { data: f.data, key: f.flags.is_key }),
                _ => None,
            })
            .collect())
    }
}

/// A VP8 decoder for one remote track.
pub(crate) struct Vp8Decoder {
    dec: Decoder,
}

impl Vp8Decoder {
    pub(crate) fn new() -> Result<Self, Error> {
        let dec = Decoder::new(DecoderConfig::new(vpx_rs::dec::CodecId::VP8, 0, 0)).map_err(codec)?;
        Ok(Vp8Decoder { dec })
    }

    /// Decodes one frame; the picture is copied out (libvpx reuses its buffer).
    pub(crate) fn decode(&mut self, data: &[u8]) -> Result<Option<I420Frame>, Error> {
        let mut last = None;
        for image in self.dec.decode(data).map_err(codec)? {
            let (w, h) = (image.width(), image.height());
            let DecodedImageData::Data8b(yuv) = image.data() else { return Err(codec("high bit depth VP8")) };
            let planes = yuv.planes();
            let vpx_rs::image::UVImagePlanes::Separate(uv) = &planes.uv else {
                return Err(codec("interleaved chroma"));
            };
            let (wu, hu, cw, ch) = (w as usize, h as usize, (w as usize).div_ceil(2), (h as usize).div_ceil(2));
            let mut data = Vec::with_capacity(wu * hu + 2 * cw * ch);
            for row in 0..hu {
                let s = row * planes.y_stride();
                data.extend_from_slice(planes.y.get(s..s + wu).ok_or_else(|| codec("short Y plane"))?);
            }
            for (plane, stride) in [(uv.u, uv.u_stride()), (uv.v, uv.v_stride())] {
                for row in 0..ch {
                    let s = row * stride;
                    data.extend_from_slice(plane.get(s..s + cw).ok_or_else(|| codec("short chroma plane"))?);
                }
            }
            // A size beyond the caps (or planes that do not add up) drops this frame, not the call.
            last = Some(I420Frame::new(w, h, data).map_err(|e| codec(format!("decoded frame: {e}")))?);
        }
        Ok(last)
    }
}

/// Whether a complete VP8 frame is a keyframe (bit 0 of the first byte is 0).
pub(crate) fn is_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{TestPattern, VideoSource, BAR_LUMA};

    #[test]
    fn encode_decode_round_trip_keeps_content_and_honours_keyframe_requests() {
        let mut src = TestPattern::new(320, 240);
        let mut enc = Vp8Encoder::new(320, 240, 30, 600).expect("encoder");
        let mut dec = Vp8Decoder::new().expect("decoder");
        let mut decoded = None;
        let mut keys = Vec::new();
        for i in 0..20 {
            for f in enc.encode(&src.next_frame(), i == 15, i64::from(i) * 33).expect("encode") {
                keys.push((i, f.key, is_keyframe(&f.data)));
                if let Some(p) = dec.decode(&f.data).expect("decode") {
                    decoded = Some(p);
                }
            }
        }
        assert!(keys[0].1 && keys[0].2, "the first frame is a keyframe");
        assert!(keys.iter().any(|&(i, k, b)| i == 15 && k && b), "a forced keyframe: {keys:?}");
        assert!(keys.iter().filter(|k| k.1).count() <= 3, "not every frame is a keyframe");
        let p = decoded.expect("decoded picture");
        assert_eq!((p.width(), p.height()), (320, 240));
        let bar = p.mean_luma(5, 5, 30, 60);
        assert!((bar - f64::from(BAR_LUMA[0])).abs() < 8.0, "first bar luma {bar}");
        assert!(dec.decode(b"\x00garbage").is_err(), "a corrupt frame is an error, not a panic");
    }

    #[test]
    fn frames_of_every_size_decode_into_valid_frames_that_convert() {
        // libvpx's encoder here takes even sizes only (odd ones, as Chromium sends them, are
        // covered by the window test `e2e::frame_sizes`); 214x162 has odd-sized chroma planes.
        for (w, h) in [(214, 162), (428, 320), (160, 120), (480, 360)] {
            let mut enc = Vp8Encoder::new(w, h, 30, 300).expect("encoder");
            let mut dec = Vp8Decoder::new().expect("decoder");
            let frame = I420Frame::filled(w, h, 126, 128, 128);
            let mut decoded = None;
            for i in 0..3 {
                for f in enc.encode(&frame, i == 0, i * 33).expect("encode") {
                    decoded = dec.decode(&f.data).expect("decode").or(decoded);
                }
            }
            let d = decoded.expect("a decoded frame");
            assert_eq!((d.width(), d.height()), (w, h));
            let mut out = vec![0u8; (w * h * 4) as usize];
            d.to_bgrx(&mut out, w * 4).expect("convert");
            assert!(out.chunks(4).all(|p| p[0].abs_diff(128) < 8), "grey stays grey at {w}x{h}");
        }
    }

    /// xorshift32: cheap, deterministic grain for test pictures.
    fn noise(seed: &mut u32) -> u32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        *seed
    }

    /// Bytes the encoder makes of `frames` noisy frames (a camera's grain: hard to compress).
    fn bytes_for(enc: &mut Vp8Encoder, frames: i64, seed: &mut u32) -> usize {
        let (w, h) = enc.size();
        let mut total = 0;
        for i in 0..frames {
            let mut f = I420Frame::filled(w, h, 128, 128, 128);
            for p in f.data_mut().iter_mut().take((w * h) as usize) {
                *p = 64 + (noise(seed) % 128) as u8;
            }
            total += enc.encode(&f, false, 1000 + i * 33).expect("encode").iter().map(|e| e.data.len()).sum::<usize>();
        }
        total
    }

    #[test]
    fn a_running_encoder_takes_a_lower_bitrate_and_a_new_size_either_way() {
        let mut seed = 7;
        let mut enc = Vp8Encoder::new(640, 480, 30, 1000).expect("encoder");
        bytes_for(&mut enc, 10, &mut seed);
        let high = bytes_for(&mut enc, 30, &mut seed);
        assert!(!enc.reconfigure(640, 480, 30, 150).expect("rate"), "same size");
        bytes_for(&mut enc, 10, &mut seed);
        let low = bytes_for(&mut enc, 30, &mut seed);
        assert!(low * 3 < high, "150 kbit/s makes far fewer bytes than 1000: {low} vs {high}");

        assert!(enc.reconfigure(320, 240, 20, 150).expect("smaller"), "the size changed");
        assert_eq!(enc.size(), (320, 240));
        let mut dec = Vp8Decoder::new().expect("decoder");
        let f = I420Frame::filled(320, 240, 90, 128, 128);
        let mut decoded = None;
        for i in 0..3 {
            for e in enc.encode(&f, i == 0, 5000 + i * 50).expect("encode") {
                decoded = dec.decode(&e.data).expect("decode").or(decoded);
            }
        }
        assert_eq!(decoded.map(|d| (d.width(), d.height())), Some((320, 240)));
        assert!(enc.encode(&I420Frame::filled(640, 480, 0, 128, 128), false, 6000).is_err(), "old size refused");

        // Back up: a new encoder at the larger size, its picture decoded by the same decoder.
        assert!(enc.reconfigure(640, 480, 30, 800).expect("larger"), "the size changed");
        let mut decoded = None;
        for i in 0..3 {
            for e in enc.encode(&I420Frame::filled(640, 480, 90, 128, 128), false, 7000 + i * 33).expect("encode") {
                decoded = dec.decode(&e.data).expect("decode").or(decoded);
            }
        }
        assert_eq!(decoded.map(|d| (d.width(), d.height())), Some((640, 480)));
    }

    /// A camera's picture: a grained wall panning past, and sensor noise on every pixel.
    fn camera_frame(w: u32, h: u32, t: usize, wall: &[u8], seed: &mut u32) -> I420Frame {
        let mut f = I420Frame::filled(w, h, 128, 128, 128);
        let stride = w as usize + 64;
        for (i, p) in f.data_mut().iter_mut().take((w * h) as usize).enumerate() {
            let (x, y) = (i % w as usize, i / w as usize);
            *p = wall[y * stride + (x + t * 2) % stride].saturating_add((noise(seed) % 9) as u8);
        }
        f
    }

    #[test]
    fn issue_12_a_20_fps_rung_taken_from_a_30_fps_camera_holds_its_bitrate() {
        // The send loop runs on the camera's 33 ms clock, so a 20 fps rung sends frames 33 and 67
        // ms apart in turn. Told those gaps as the frames' durations, libvpx saw frames 100 and 0
        // ms long and sent a third more than asked here (twice as much on the camera clip).
        let (w, h) = (320, 240);
        let mut seed = 11u32;
        let wall: Vec<u8> = (0..(w as usize + 64) * h as usize)
            .map(|i| {
                let stripe = if (i / 20) % 2 == 0 { 100 } else { 130 };
                stripe + (noise(&mut seed) % 40) as u8
            })
            .collect();
        let mut enc = Vp8Encoder::new(640, 480, 30, 800).expect("encoder");
        enc.reconfigure(w, h, 20, 250).expect("the rung");
        let (mut bytes, mut at) = (0usize, 0i64);
        for i in 0..200usize {
            at += if i % 2 == 0 { 33 } else { 67 };
            let f = camera_frame(w, h, i * 3 / 2, &wall, &mut seed);
            let out: usize = enc.encode(&f, i == 0, at).expect("encode").iter().map(|e| e.data.len()).sum();
            // The first two seconds are the rate control settling (and the keyframe).
            if i >= 40 {
                bytes += out;
            }
        }
        let kbps = bytes as f64 * 8.0 / 1000.0 / 8.0;
        assert!((200.0..=290.0).contains(&kbps), "250 kbit/s asked, {kbps:.0} sent");
    }
    /// Issue #12: on the poor profile the kiosk sent the consultant 15-17 frames a second where
    /// Chromium, encoding the same camera clip on the same link, sent 27-28: at a low rate libvpx
    /// spent its bits on the sensor's noise and dropped frames to stay within it. libwebrtc turns
    /// VP8's denoiser on for a camera; at 150 kbit/s and 480x360 the clip then kept all its frames
    /// (22.5 a second without).
    #[test]
    fn issue_12_a_noisy_camera_at_a_low_rate_keeps_its_frames() {
        let clip = crate::camera_clip::frames();
        let mut enc = Vp8Encoder::new(640, 480, 30, 800).expect("encoder");
        enc.reconfigure(480, 360, 30, 150).expect("the rung");
        let (mut sent, mut frames) = (0, 0);
        for i in 0..300usize {
            let f = clip[i % clip.len()].scaled(480, 360);
            let out = enc.encode(&f, i == 0, i as i64 * 33).expect("encode");
            // The first two seconds are the rate control settling (and the keyframe).
            if i >= 60 {
                frames += 1;
                sent += usize::from(!out.is_empty());
            }
        }
        assert!(sent * 100 >= frames * 95, "{sent} of {frames} frames encoded at 150 kbit/s");
    }

    /// Issue #12: on the poor profile the kiosk's 320x240 rung is given ~67 kbit/s beside its
    /// parity packets; a frame of the camera clip at libvpx's coarsest quantizer is ~530 bytes
    /// with the adaptive denoiser, so libvpx dropped a fifth of the frames (430 of 540 here) and
    /// the consultant saw 14.5-17.5 fps. With the denoiser at its strongest at that size, 499.
    #[test]
    fn issue_12_a_small_rung_at_a_poor_links_rate_keeps_its_frames() {
        let clip = crate::camera_clip::frames();
        assert!(!strong_denoise(640, 480), "a good link's picture keeps its detail");
        let mut enc = Vp8Encoder::new(640, 480, 30, 800).expect("encoder");
        enc.reconfigure(320, 240, 20, 67).expect("the rung");
        let (mut sent, mut frames, mut at) = (0, 0, 0i64);
        // Two frames of every three of the 30 fps camera, as the send loop takes them.
        for i in (0..900usize).filter(|i| i % 3 != 2) {
            at += 50;
            let f = clip[i % clip.len()].scaled(320, 240);
            let out = enc.encode(&f, i == 0, at).expect("encode");
            // The first three seconds are the rate control settling (and the keyframe).
            if i >= 90 {
                frames += 1;
                sent += usize::from(!out.is_empty());
            }
        }
        assert!(sent * 100 >= frames * 90, "{sent} of {frames} frames encoded at 67 kbit/s");
    }

    /// Issue #12: the kiosk's encoder starts at the top rung and the first estimate steps it down.
    /// Created at 640x480 and told 320x240 at 20 fps and 60 kbit/s (the poor profile's rung beside
    /// its parity), libvpx dropped a fifth of the camera clip's frames (327 of 400), where one
    /// created at that size dropped none; the consultant saw 16-18 frames a second of 20. Taken
    /// from the 30 fps camera as the send loop takes them, with its capture times.
    #[test]
    fn issue_12_a_rung_down_from_the_top_keeps_its_frames_as_a_new_encoder_would() {
        let clip = crate::camera_clip::frames();
        let mut enc = Vp8Encoder::new(640, 480, 30, 250).expect("encoder");
        for i in 0..30usize {
            enc.encode(&clip[i % clip.len()], i == 0, i as i64 * 33).expect("encode at the top");
        }
        assert!(enc.reconfigure(320, 240, 20, 60).expect("the rung"), "a new size");
        assert_eq!(enc.size(), (320, 240));
        let (mut sent, mut frames, mut due) = (0, 0, 1000.0);
        for i in 30..900usize {
            let at = i as f64 * 1000.0 / 30.0;
            if at + 0.5 < due {
                continue;
            }
            due = (due + 50.0f64).max(at + 25.0);
            let out = enc.encode(&clip[i % clip.len()].scaled(320, 240), false, at as i64).expect("encode");
            assert!(frames > 0 || out.first().is_some_and(|f| f.key), "a new size starts with a keyframe");
            // Counted after the rate control's first seconds at the new size.
            if i >= 300 || frames == 0 {
                frames += 1;
                sent += usize::from(!out.is_empty());
            }
        }
        assert!(sent * 100 >= frames * 98, "{sent} of {frames} frames encoded at 60 kbit/s");
        // And back up to the top: a size larger than the last is taken too.
        assert!(enc.reconfigure(640, 480, 30, 800).expect("the top rung"));
        let out = enc.encode(&clip[0], false, 30_000).expect("encode at the top again");
        assert!(out.first().is_some_and(|f| f.key && is_keyframe(&f.data)), "the top again starts with a keyframe");
    }
}

/// Corrects for libvpx missing its target, as libwebrtc's encoder bitrate adjuster does: the rate
/// given to the encoder is the wanted rate scaled by how far what it produced over the last two
/// seconds overshot. Measured on the camera clip at 320x240: 350-400 kbit/s produced for a 200
/// kbit/s setting, even with a one-second rate buffer. Pure: the sizes and times go in.
#[derive(Debug)]
pub(crate) struct RateAdjuster {
    produced: std::collections::VecDeque<(std::time::Instant, usize)>,
    factor: f64,
    updated: Option<std::time::Instant>,
}

/// The window the produced rate is measured over.
const ADJUST_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);
/// The least share of the wanted rate the encoder is ever set to.
const ADJUST_MIN: f64 = 0.3;

impl Default for RateAdjuster {
    fn default() -> Self {
        RateAdjuster { produced: std::collections::VecDeque::new(), factor: 1.0, updated: None }
    }
}

impl RateAdjuster {
    /// The encoder produced `bytes` at `at`.
    pub(crate) fn produced(&mut self, at: std::time::Instant, bytes: usize) {
        self.produced.push_back((at, bytes));
        while self.produced.front().is_some_and(|(t, _)| at.saturating_duration_since(*t) > ADJUST_WINDOW) {
            self.produced.pop_front();
        }
    }

    /// Forgets what was produced (a new size or rate: the old figures say nothing about it).
    pub(crate) fn reset(&mut self) {
        self.produced.clear();
        self.updated = None;
    }

    /// The rate (kbit/s) to configure for `wanted` at `now`: updated at most once a second, from
    /// at least a second of output.
    pub(crate) fn rate(&mut self, now: std::time::Instant, wanted: u32) -> u32 {
        let due = self.updated.is_none_or(|t| now.saturating_duration_since(t) >= std::time::Duration::from_secs(1));
        let span = self.produced.front().map_or(std::time::Duration::ZERO, |(t, _)| now.saturating_duration_since(*t));
        if due && span >= std::time::Duration::from_secs(1) && wanted > 0 {
            self.updated = Some(now);
            // What came after the first entry, over the time since it.
            let bytes = self.produced.iter().skip(1).map(|(_, b)| *b as f64).sum::<f64>();
            let kbps = bytes * 8.0 / 1000.0 / span.as_secs_f64();
            let overshoot = kbps / f64::from(wanted);
            // Move part of the way each second, so one keyframe does not swing it.
            let target = (self.factor / overshoot.max(0.01)).clamp(ADJUST_MIN, 1.0);
            self.factor = (0.6 * self.factor + 0.4 * target).clamp(ADJUST_MIN, 1.0);
        }
        ((f64::from(wanted) * self.factor).round() as u32).max(1)
    }
}

#[cfg(test)]
mod adjuster_tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Feeds an encoder that produces `ratio` times what it is set to, at 20 fps, for `secs`.
    fn run(a: &mut RateAdjuster, t: &mut Instant, wanted: u32, ratio: f64, secs: u32) -> u32 {
        let mut set = a.rate(*t, wanted);
        for _ in 0..secs * 20 {
            *t += Duration::from_millis(50);
            let bytes = f64::from(set) * ratio * 1000.0 / 8.0 / 20.0;
            a.produced(*t, bytes as usize);
            set = a.rate(*t, wanted);
        }
        set
    }

    #[test]
    fn an_encoder_that_overshoots_is_set_lower_until_it_produces_what_is_wanted() {
        let mut a = RateAdjuster::default();
        let mut t = Instant::now();
        let set = run(&mut a, &mut t, 200, 2.0, 20);
        assert!((90..=115).contains(&set), "an encoder producing twice its setting is set near half: {set}");
        // One that hits its target is left alone, and recovers from an earlier correction.
        let mut a = RateAdjuster::default();
        assert_eq!(run(&mut a, &mut t, 300, 1.0, 10), 300);
        let set = run(&mut a, &mut t, 300, 0.8, 10);
        assert_eq!(set, 300, "undershoot is not corrected upward past the wanted rate");
        // Never below the floor.
        let mut a = RateAdjuster::default();
        assert_eq!(run(&mut a, &mut t, 200, 20.0, 30), 60);
    }
}
