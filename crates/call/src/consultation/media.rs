//! How the kiosk's media is set up for calls: the cameras, microphone and speaker to open (the
//! laptop's devices, synthetic ones for tests and the demo, or a Y4M clip for the link tests).

use crate::source::{AudioSink, AudioSource, Checkerboard, NullSink, TestPattern, Tone, VideoSource, Voice};
use std::sync::Arc;
use std::time::Duration;

/// Opens camera `n` (of [`MediaSetup::cameras`]).
pub type VideoFactory = Box<dyn Fn(usize) -> Result<Box<dyn VideoSource>, String> + Send + Sync>;
/// Opens the microphone.
pub type AudioFactory = Box<dyn Fn() -> Result<Box<dyn AudioSource>, String> + Send + Sync>;
/// Opens the speaker.
pub type PlaybackFactory = Box<dyn Fn() -> Result<Box<dyn AudioSink>, String> + Send + Sync>;

/// How the kiosk's media is set up for calls.
pub struct MediaSetup {
    /// UDP sockets for the TURN client.
    pub bind_addrs: Vec<String>,
    /// The cameras' names in switching order (the laptop's own first, then a hand-held one).
    pub cameras: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    /// Opens a camera.
    pub video: VideoFactory,
    /// Opens the microphone.
    pub audio: AudioFactory,
    /// Opens the speaker.
    pub playback: PlaybackFactory,
    /// How long the call may take to connect through the relay before it is given up.
    pub connect_timeout: Duration,
    /// How shared images are decoded: the kiosk uses a confined helper process (sc-sandbox); tests
    /// that are not about the sandbox decode in process.
    pub decoder: Arc<dyn sc_imaging::Decoder>,
    /// Protect the kiosk's video with ULPFEC (`CallConfig::video_fec`): on in the kiosk; the
    /// benchmark can turn it off to measure the difference.
    pub video_fec: bool,
    /// Where the link's record is kept between calls (`crate::link_memory`): in the kiosk's data
    /// directory; `None` starts every call as on a new link.
    pub link_memory: Option<crate::link_memory::LinkMemory>,
}

/// What both screens say while the link is too poor for video.
pub const SOUND_ONLY_NOTICE: &str = "Poor connection: sound only";

/// What the nurse is told when the laptop has no camera.
pub const NO_CAMERA: &str = "No camera is available on this laptop.";

impl MediaSetup {
    /// Synthetic media for tests and the demo: two "cameras" (the moving bars, and a checkerboard
    /// standing in for the hand-held close-up camera), a 440 Hz tone, and no speaker.
    pub fn synthetic(bind_addrs: Vec<String>, connect_timeout: Duration) -> Self {
        MediaSetup {
            bind_addrs,
            cameras: Box::new(|| vec!["Test pattern".to_owned(), "Close-up (checkerboard)".to_owned()]),
            video: Box::new(|n| match n {
                0 => Ok(Box::new(TestPattern::new(640, 480)) as Box<dyn VideoSource>),
                1 => Ok(Box::new(Checkerboard::new(640, 480)) as Box<dyn VideoSource>),
                _ => Err(NO_CAMERA.to_owned()),
            }),
            audio: Box::new(|| Ok(Box::new(Tone::new(440.0, 0.2)) as Box<dyn AudioSource>)),
            playback: Box::new(|| Ok(Box::new(NullSink) as Box<dyn AudioSink>)),
            connect_timeout,
            decoder: Arc::new(sc_imaging::InProcess),
            video_fec: true,
            link_memory: None,
        }
    }
}

impl MediaSetup {
    /// As [`MediaSetup::synthetic`], with a Y4M clip played in a loop as the first camera and, as
    /// the microphone, the WAV file beside it (`<clip>.wav`, [`crate::wav::WavLoop`]) or else a
    /// synthetic voice (the link tests and benchmarks: what a real camera and a talking person
    /// send, not a pattern that compresses away and a tone Opus codes as music).
    pub fn clip(bind_addrs: Vec<String>, connect_timeout: Duration, path: std::path::PathBuf) -> Self {
        let mut media = MediaSetup::synthetic(bind_addrs, connect_timeout);
        media.cameras = Box::new(|| vec!["Video clip".to_owned(), "Close-up (checkerboard)".to_owned()]);
        let clip = path.clone();
        media.video = Box::new(move |n| match n {
            0 => crate::y4m::Y4mClip::open(&clip, 640, 480).map(|c| Box::new(c) as Box<dyn VideoSource>),
            1 => Ok(Box::new(Checkerboard::new(640, 480)) as Box<dyn VideoSource>),
            _ => Err(NO_CAMERA.to_owned()),
        });
        let wav = path.with_extension("wav");
        media.audio = Box::new(move || {
            if wav.exists() {
                crate::wav::WavLoop::open(&wav).map(|w| Box::new(w) as Box<dyn AudioSource>)
            } else {
                Ok(Box::new(Voice::new(0.3)) as Box<dyn AudioSource>)
            }
        });
        media
    }
}

impl std::fmt::Debug for MediaSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaSetup({:?}, {:?})", self.bind_addrs, self.decoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clip_setup_plays_the_clip_as_the_first_camera_and_names_a_missing_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clip.y4m");
        let mut bytes = b"YUV4MPEG2 W640 H480 F30:1 C420jpeg\nFRAME\n".to_vec();
        bytes.extend(std::iter::repeat_n(77u8, 640 * 480));
        bytes.extend(std::iter::repeat_n(128u8, 640 * 480 / 2));
        std::fs::write(&path, bytes).expect("write");
        let media = MediaSetup::clip(vec![], Duration::from_secs(1), path.clone());
        assert_eq!((media.cameras)()[0], "Video clip");
        let mut camera = (media.video)(0).expect("the clip opens");
        assert_eq!(camera.next_frame().mean_luma(0, 0, 640, 480), 77.0);
        assert!((media.video)(1).is_ok(), "the close-up camera stays");

        std::fs::remove_file(&path).expect("remove");
        let e = (media.video)(0).err().expect("a missing clip is an error");
        assert!(e.contains("clip.y4m"), "{e}");
    }
}
