//! A call's threads end with it (issue #12 point 7): dropped without `close`, the encoder threads
//! still stop and let go of the camera and the microphone.

use sc_call::source::{AudioSource, TestPattern, Tone, VideoSource};
use sc_call::{Call, I420Frame};
use sc_proto::signal::Role;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A source that says when it has been let go of.
struct Watched<S> {
    inner: S,
    dropped: Arc<AtomicBool>,
}

impl<S> Drop for Watched<S> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl<S: VideoSource> VideoSource for Watched<S> {
    fn next_frame(&mut self) -> I420Frame {
        self.inner.next_frame()
    }
}

impl<S: AudioSource> AudioSource for Watched<S> {
    fn fill(&mut self, out: &mut [i16]) {
        self.inner.fill(out);
    }
}

#[tokio::test]
async fn a_call_dropped_without_close_stops_its_encoder_threads_and_lets_go_of_the_devices() {
    let (camera, microphone) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    // A relay nobody answers on: the call never connects, its threads wait for it.
    let config = crate::dead_relay_config(
        Box::new(Watched { inner: TestPattern::new(320, 240), dropped: camera.clone() }),
        Box::new(Watched { inner: Tone::new(440.0, 0.1), dropped: microphone.clone() }),
    );
    let (call, _events) = Call::start(config, Role::Offerer).await.expect("call starts");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!camera.load(Ordering::SeqCst) && !microphone.load(Ordering::SeqCst), "in use while the call runs");
    drop(call);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(camera.load(Ordering::SeqCst) && microphone.load(Ordering::SeqCst)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(camera.load(Ordering::SeqCst), "the camera was let go of");
    assert!(microphone.load(Ordering::SeqCst), "the microphone was let go of");
}
