//! The kiosk's calls as the page sees them: one consultation at a time, its phase, and its
//! decoded video sent raw over a Tauri channel (newest frame only; the channel has no back-pressure).

use sc_call::consultation::{Consultation, MediaSetup, Phase};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tauri::ipc::{Channel, InvokeResponseBody};

/// How long a call may take to connect through the relay.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The managed call state.
pub struct Calls {
    /// How media is set up for every call.
    pub media: Arc<MediaSetup>,
    current: Mutex<Option<Consultation>>,
    /// The page's channels for the consultant's video and the self-view.
    video: Mutex<Option<Channel<InvokeResponseBody>>>,
    self_view: Mutex<Option<Channel<InvokeResponseBody>>>,
    /// Video is drawn on the native surface (src/surface.rs), so the page is sent no frames.
    native: bool,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Calls({:?})", self.media)
    }
}

/// Media from the environment: `SC_KIOSK_MEDIA=synthetic` uses a test pattern, a checkerboard as
/// the second camera, and a tone (tests and the demo); `SC_KIOSK_MEDIA=file:<clip.y4m>` plays a
/// 640x480 Y4M clip in a loop as the first camera instead (link tests and benchmarks); otherwise the laptop's cameras, and the
/// ALSA microphone and speaker (`SC_KIOSK_MIC`, `SC_KIOSK_SPEAKER` name ALSA devices; default: the
/// default device). `SC_KIOSK_BIND` lists the UDP addresses for the TURN client (comma-separated).
/// Whatever the media, shared images are decoded by `secureconsult-decode`, a confined helper
/// process, one a file.
pub fn media_from_env() -> MediaSetup {
    let mut media = devices_from_env();
    media.decoder = Arc::new(sc_sandbox::Helper::installed(sc_sandbox::HelperLimits::default()));
    media
}

fn devices_from_env() -> MediaSetup {
    let synthetic = std::env::var("SC_KIOSK_MEDIA").is_ok_and(|m| m == "synthetic");
    let bind_addrs = std::env::var("SC_KIOSK_BIND")
        .map(|b| b.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_else(|_| vec!["0.0.0.0:0".to_owned()]);
    if let Some(clip) = std::env::var("SC_KIOSK_MEDIA").ok().and_then(|m| m.strip_prefix("file:").map(PathBuf::from)) {
        MediaSetup::clip(bind_addrs, CONNECT_TIMEOUT, clip)
    } else if synthetic {
        MediaSetup::synthetic(bind_addrs, CONNECT_TIMEOUT)
    } else {
        sc_call::devices::media(
            bind_addrs,
            CONNECT_TIMEOUT,
            std::env::var("SC_KIOSK_MIC").ok(),
            std::env::var("SC_KIOSK_SPEAKER").ok(),
        )
    }
}

impl Calls {
    /// No call yet.
    pub fn new(media: MediaSetup) -> Self {
        Calls {
            media: Arc::new(media),
            current: Mutex::new(None),
            video: Mutex::new(None),
            self_view: Mutex::new(None),
            native: false,
        }
    }

    /// Draw video natively instead of in the page.
    pub fn drawing_natively(mut self, native: bool) -> Self {
        self.native = native;
        self
    }

    /// Whether the page draws the video (false: the native surface does).
    pub fn page_draws(&self) -> bool {
        !self.native
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Consultation>> {
        // The guarded value is replaced whole, so a poisoned lock still holds a sound value.
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a consultation is under way (not ended).
    pub fn active(&self) -> bool {
        self.current().as_ref().is_some_and(|c| !matches!(c.phase(), Phase::Ended { .. }))
    }

    /// Starts a consultation; the caller has checked the laptop is unlocked.
    pub fn start(&self, consultation: Consultation) {
        let feeds = [(&self.video, consultation.frames()), (&self.self_view, consultation.self_view())];
        for (slot, frames) in feeds {
            if let Some(channel) = slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() {
                tauri::async_runtime::spawn(forward_frames(frames, channel));
            }
        }
        *self.current() = Some(consultation);
    }

    /// The current phase, if any.
    pub fn phase(&self) -> Option<Phase> {
        self.current().as_ref().map(Consultation::phase)
    }

    /// Runs `f` on the current consultation.
    pub fn with<T>(&self, f: impl FnOnce(&Consultation) -> T) -> Option<T> {
        self.current().as_ref().map(f)
    }

    /// Forgets an ended consultation.
    pub fn dismiss(&self) {
        let mut current = self.current();
        if current.as_ref().is_some_and(|c| matches!(c.phase(), Phase::Ended { .. })) {
            *current = None;
        }
    }

    /// Ends any consultation (the laptop is locking).
    pub fn end_all(&self) {
        if let Some(c) = self.current().take() {
            c.hang_up();
        }
    }

    /// The page's video channel.
    pub fn set_video_channel(&self, channel: Channel<InvokeResponseBody>) {
        self.set_channel(&self.video, channel, Consultation::frames);
    }

    /// The page's self-view channel.
    pub fn set_self_view_channel(&self, channel: Channel<InvokeResponseBody>) {
        self.set_channel(&self.self_view, channel, Consultation::self_view);
    }

    /// Keeps a page channel for later calls and feeds it the current call's frames, if any (never in
    /// native mode, where the page draws no video).
    fn set_channel(
        &self,
        slot: &Mutex<Option<Channel<InvokeResponseBody>>>,
        channel: Channel<InvokeResponseBody>,
        frames_of: fn(&Consultation) -> Frames,
    ) {
        if self.native {
            return;
        }
        *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(channel.clone());
        if let Some(frames) = self.current().as_ref().map(frames_of) {
            tauri::async_runtime::spawn(forward_frames(frames, channel));
        }
    }
}

/// The kiosk's timer asks whether a call is under way (it counts as activity) and ends the call
/// when the laptop locks.
impl sc_core::timer::CallControl for Calls {
    fn in_call(&self) -> bool {
        self.active()
    }

    fn end_calls(&self) {
        self.end_all();
    }
}

type Frames = tokio::sync::watch::Receiver<Option<Arc<sc_call::I420Frame>>>;

/// Sends each new frame to the page until the call's frame channel closes (the call ended).
async fn forward_frames(mut frames: Frames, channel: Channel<InvokeResponseBody>) {
    let mut number = 0u32;
    while frames.changed().await.is_ok() {
        let frame = frames.borrow_and_update().clone();
        if let Some(frame) = frame {
            number = number.wrapping_add(1);
            if channel.send(InvokeResponseBody::Raw(frame.to_wire(number))).is_err() {
                break;
            }
        }
    }
}
