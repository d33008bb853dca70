//! Real capture and playback: cameras through V4L2 (nokhwa), the microphone and speaker through
//! ALSA (cpal). Each device runs on a thread of its own and hands over only the newest data, so a
//! slow or vanished device never stalls the call; a failing device turns into silence or black.

use crate::consultation::{MediaSetup, NO_CAMERA};
use crate::convert::{to_i420, PixelLayout, Resampler};
use crate::frame::I420Frame;
use crate::source::{AudioSink, AudioSource, VideoSource};
use cpal::traits::{DeviceTrait as _, HostTrait as _, StreamTrait as _};
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Audio is kept at most this long in a device buffer; older samples are dropped so delay never
/// builds up behind a device that runs slow.
const MAX_BUFFERED: usize = 48_000 * 2 / 5; // 200 ms of 48 kHz stereo

/// How long a device may take to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// The names of the V4L2 cameras, in index order (empty when there are none).
pub fn cameras() -> Vec<String> {
    match nokhwa::query(ApiBackend::Video4Linux) {
        Ok(list) => list.into_iter().map(|c| c.human_name()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cameras could not be listed");
            Vec::new()
        }
    }
}

/// Media from the laptop's devices: V4L2 cameras, and the ALSA microphone and speaker (by ALSA
/// PCM name, or the default device when `None`).
pub fn media(
    bind_addrs: Vec<String>,
    connect_timeout: Duration,
    mic: Option<String>,
    speaker: Option<String>,
) -> MediaSetup {
    MediaSetup {
        bind_addrs,
        cameras: Box::new(cameras),
        video: Box::new(|n| Camera::open(n, 640, 480, 30).map(|c| Box::new(c) as Box<dyn VideoSource>)),
        audio: Box::new(move || Microphone::open(mic.as_deref()).map(|m| Box::new(m) as Box<dyn AudioSource>)),
        playback: Box::new(move || Speaker::open(speaker.as_deref()).map(|s| Box::new(s) as Box<dyn AudioSink>)),
        connect_timeout,
        decoder: Arc::new(sc_imaging::InProcess),
        video_fec: true,
        link_memory: None,
    }
}

/// Stops a device thread when its handle goes.
#[derive(Debug, Default)]
struct StopFlag(Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A V4L2 camera, captured on its own thread; [`VideoSource::next_frame`] takes the newest frame.
#[derive(Debug)]
pub struct Camera {
    latest: Arc<Mutex<Option<I420Frame>>>,
    size: (u32, u32),
    _stop: StopFlag,
}

impl Camera {
    /// Opens camera `index` asking for `width`x`height` YUYV at `fps` (or the closest it has);
    /// frames come out at exactly `width`x`height`.
    pub fn open(index: usize, width: u32, height: u32, fps: u32) -> Result<Self, String> {
        let count = cameras().len();
        if index >= count {
            return Err(NO_CAMERA.to_owned());
        }
        let latest = Arc::new(Mutex::new(None));
        let stop = StopFlag::default();
        let (ready_tx, ready) = mpsc::channel::<Result<(), String>>();
        let (out, flag) = (latest.clone(), stop.0.clone());
        let index = u32::try_from(index).map_err(|_| NO_CAMERA.to_owned())?;
        std::thread::Builder::new()
            .name("camera".into())
            .spawn(move || {
                let wanted = CameraFormat::new(Resolution::new(width, height), FrameFormat::YUYV, fps);
                let format =
                    RequestedFormat::new::<nokhwa::pixel_format::RgbFormat>(RequestedFormatType::Closest(wanted));
                let opened = nokhwa::Camera::new(CameraIndex::Index(index), format)
                    .and_then(|mut c| c.open_stream().map(|()| c));
                let mut camera = match opened {
                    Ok(c) => {
                        let _ = ready_tx.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("The camera could not be opened: {e}")));
                        return;
                    }
                };
                while !flag.load(Ordering::Relaxed) {
                    match camera.frame() {
                        Ok(buf) => {
                            let res = buf.resolution();
                            let converted = PixelLayout::try_from(buf.source_frame_format()).and_then(|layout| {
                                to_i420(buf.buffer(), layout, res.width(), res.height(), width, height)
                            });
                            match converted {
                                Ok(frame) => *crate::lock(&out) = Some(frame),
                                Err(e) => tracing::debug!(error = %e, "camera frame skipped"),
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "camera stopped delivering");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
                let _ = camera.stop_stream();
            })
            .map_err(|e| format!("The camera could not be started: {e}"))?;
        match ready.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(())) => Ok(Camera { latest, size: (width, height), _stop: stop }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("The camera did not answer.".to_owned()),
        }
    }
}

impl VideoSource for Camera {
    fn next_frame(&mut self) -> I420Frame {
        // Until the first frame arrives (or if the camera stalls) the last one, or black, is sent.
        crate::lock(&self.latest).clone().unwrap_or_else(|| I420Frame::filled(self.size.0, self.size.1, 16, 128, 128))
    }
}

/// Picks an ALSA device by PCM name (`None`: the default).
fn audio_device(name: Option<&str>, input: bool) -> Result<cpal::Device, String> {
    let what = if input { "microphone" } else { "speaker" };
    let host = cpal::default_host();
    let device = match name {
        None if input => host.default_input_device(),
        None => host.default_output_device(),
        Some(n) => {
            let id = format!("alsa:{n}").parse().map_err(|e| format!("Bad {what} name {n:?}: {e}"))?;
            host.device_by_id(&id)
        }
    };
    device.ok_or_else(|| format!("No {what} is available on this laptop."))
}

/// A shared buffer of 48 kHz stereo samples between a device callback and the call.
#[derive(Debug, Default, Clone)]
struct Ring(Arc<Mutex<VecDeque<i16>>>);

impl Ring {
    fn push(&self, samples: impl IntoIterator<Item = i16>) {
        let mut q = crate::lock(&self.0);
        q.extend(samples);
        let excess = q.len().saturating_sub(MAX_BUFFERED);
        q.drain(..excess);
    }

    fn pop_into(&self, out: &mut [i16]) -> usize {
        let mut q = crate::lock(&self.0);
        let n = out.len().min(q.len());
        for (o, s) in out.iter_mut().zip(q.drain(..n)) {
            *o = s;
        }
        n
    }
}

/// Runs a cpal stream on a thread of its own (streams need not be `Send`) until the handle drops.
fn run_stream(
    name: &'static str,
    build: impl FnOnce() -> Result<cpal::Stream, String> + Send + 'static,
) -> Result<StopFlag, String> {
    let stop = StopFlag::default();
    let flag = stop.0.clone();
    let (ready_tx, ready) = mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let stream = match build().and_then(|s| s.play().map(|()| s).map_err(|e| e.to_string())) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(stream);
        })
        .map_err(|e| e.to_string())?;
    match ready.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(())) => Ok(stop),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the device did not answer".into()),
    }
}

/// The microphone, resampled to 48 kHz stereo.
#[derive(Debug)]
pub struct Microphone {
    ring: Ring,
    captured: Arc<AtomicU64>,
    _stop: StopFlag,
}

impl Microphone {
    /// Opens the ALSA capture device `name` (or the default).
    pub fn open(name: Option<&str>) -> Result<Self, String> {
        let device = audio_device(name, true)?;
        let config = device.default_input_config().map_err(|e| format!("The microphone cannot be used: {e}"))?;
        let (ring, captured) = (Ring::default(), Arc::new(AtomicU64::new(0)));
        let (r, c) = (ring.clone(), captured.clone());
        let (channels, rate, format) = (config.channels(), config.sample_rate(), config.sample_format());
        let stream_config = config.config();
        let stop = run_stream("microphone", move || {
            let mut resampler = Resampler::new(rate, channels, 48_000, 2);
            let mut deliver = move |samples: &[f32]| {
                c.fetch_add(samples.len() as u64 / u64::from(channels.max(1)), Ordering::Relaxed);
                r.push(resampler.process(samples).into_iter().map(to_i16));
            };
            let err = |e: cpal::Error| tracing::warn!(error = %e, "microphone");
            let built = match format {
                cpal::SampleFormat::F32 => {
                    device.build_input_stream::<f32, _, _>(stream_config, move |d, _| deliver(d), err, None)
                }
                cpal::SampleFormat::I16 => device.build_input_stream::<i16, _, _>(
                    stream_config,
                    move |d, _| deliver(&d.iter().map(|&s| f32::from(s) / 32_768.0).collect::<Vec<_>>()),
                    err,
                    None,
                ),
                other => return Err(format!("The microphone's sample format {other} is not supported.")),
            };
            built.map_err(|e| format!("The microphone cannot be used: {e}"))
        })?;
        Ok(Microphone { ring, captured, _stop: stop })
    }

    /// Device frames captured so far.
    pub fn frames_captured(&self) -> u64 {
        self.captured.load(Ordering::Relaxed)
    }
}

impl AudioSource for Microphone {
    fn fill(&mut self, out: &mut [i16]) {
        // A device running behind leaves silence rather than stalling the encoder's 20 ms tick.
        let n = self.ring.pop_into(out);
        out[n..].fill(0);
    }
}

/// The speaker, fed 48 kHz stereo and resampled to the device.
#[derive(Debug)]
pub struct Speaker {
    ring: Ring,
    played: Arc<AtomicU64>,
    _stop: StopFlag,
}

impl Speaker {
    /// Opens the ALSA playback device `name` (or the default).
    pub fn open(name: Option<&str>) -> Result<Self, String> {
        let device = audio_device(name, false)?;
        let config = device.default_output_config().map_err(|e| format!("The speaker cannot be used: {e}"))?;
        let (ring, played) = (Ring::default(), Arc::new(AtomicU64::new(0)));
        let (r, p) = (ring.clone(), played.clone());
        let (channels, rate, format) = (config.channels(), config.sample_rate(), config.sample_format());
        let stream_config = config.config();
        let stop = run_stream("speaker", move || {
            let mut resampler = Resampler::new(48_000, 2, rate, channels);
            let mut pending: VecDeque<f32> = VecDeque::new();
            let mut take = move |n: usize| -> Vec<f32> {
                while pending.len() < n {
                    let mut chunk = [0i16; 480]; // 5 ms of 48 kHz stereo
                    let got = r.pop_into(&mut chunk);
                    if got == 0 {
                        break;
                    }
                    let f: Vec<f32> = chunk[..got].iter().map(|&s| f32::from(s) / 32_768.0).collect();
                    pending.extend(resampler.process(&f));
                }
                p.fetch_add(n as u64 / u64::from(channels.max(1)), Ordering::Relaxed);
                let have = n.min(pending.len());
                let mut out: Vec<f32> = pending.drain(..have).collect();
                out.resize(n, 0.0);
                out
            };
            let err = |e: cpal::Error| tracing::warn!(error = %e, "speaker");
            let built = match format {
                cpal::SampleFormat::F32 => device.build_output_stream::<f32, _, _>(
                    stream_config,
                    move |d: &mut [f32], _| {
                        let n = d.len();
                        d.copy_from_slice(&take(n));
                    },
                    err,
                    None,
                ),
                cpal::SampleFormat::I16 => device.build_output_stream::<i16, _, _>(
                    stream_config,
                    move |d: &mut [i16], _| {
                        let samples = take(d.len());
                        for (o, s) in d.iter_mut().zip(samples) {
                            *o = to_i16(s);
                        }
                    },
                    err,
                    None,
                ),
                other => return Err(format!("The speaker's sample format {other} is not supported.")),
            };
            built.map_err(|e| format!("The speaker cannot be used: {e}"))
        })?;
        Ok(Speaker { ring, played, _stop: stop })
    }

    /// Device frames the speaker has asked for so far.
    pub fn frames_played(&self) -> u64 {
        self.played.load(Ordering::Relaxed)
    }
}

impl AudioSink for Speaker {
    fn play(&mut self, pcm: &[i16]) {
        self.ring.push(pcm.iter().copied());
    }
}

fn to_i16(s: f32) -> i16 {
    // Saturating float-to-int cast: out-of-range samples clip.
    (s * 32_767.0) as i16
}
