//! The images the consultant shares during a call: a [`Viewer`] fed by the share channel, its
//! replies sent back, and what to draw published for the window. Decoding runs on the blocking
//! pool so the call's media never waits for it. Everything lives in memory and is dropped when the
//! call ends (the task ends, taking the viewer and its images with it).

use crate::data::{DataIn, DataSender};
use sc_imaging::{Decoder, Screen, ShareLimits, Viewer};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The images as the nurse's page shows them (no clinical content: counts and messages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImagesStatus {
    /// Percent received of a share under way.
    pub receiving: Option<u8>,
    /// Images (stacks) held.
    pub images: usize,
    /// Something the nurse should know (a refused, cut or damaged share).
    pub notice: Option<String>,
    /// A multi-frame image is playing (the nurse may pause it).
    pub playing: bool,
}

/// What the nurse does to the shared image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nurse {
    /// Back to the file's own window, no zoom, not playing.
    Reset,
    /// Stop a playing loop on the frame shown.
    Pause,
}

/// The shared images' outputs.
pub(crate) struct Outputs {
    pub(crate) screen: watch::Sender<Option<Arc<Screen>>>,
    pub(crate) status: watch::Sender<ImagesStatus>,
}

enum Input {
    Data(DataIn),
    Nurse(Nurse),
    Tick,
}

fn status_of(v: &Viewer) -> ImagesStatus {
    ImagesStatus {
        receiving: v.receiving().map(|(got, total)| (got * 100).checked_div(total).map_or(100, |p| p.min(100) as u8)),
        images: v.stacks(),
        notice: v.notice().map(str::to_owned),
        playing: v.playing(),
    }
}

/// Runs the viewer until the share channel's queue or the nurse's handle closes (the call ended).
pub(crate) async fn run(
    decoder: Arc<dyn Decoder>,
    mut data: mpsc::Receiver<DataIn>,
    reply: DataSender,
    mut nurse: mpsc::UnboundedReceiver<Nurse>,
    out: Outputs,
) {
    let mut viewer = Some(Viewer::new(ShareLimits::default()).with_decoder(decoder));
    // Once a second for stalled shares; a playing loop's next frame when one is due sooner.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut frame_due: Option<tokio::time::Instant> = None;
    let (mut bytes, mut files) = (0usize, 0usize);
    loop {
        let next_frame = async move {
            match frame_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            d = data.recv() => match d { Some(d) => Input::Data(d), None => break },
            n = nurse.recv() => match n { Some(n) => Input::Nurse(n), None => break },
            _ = tick.tick() => Input::Tick,
            () = next_frame => Input::Tick,
        };
        if let Input::Data(DataIn::Binary(b)) = &input {
            bytes += b.len();
        }
        let Some(mut v) = viewer.take() else { break };
        let work = tokio::task::spawn_blocking(move || {
            let now = Instant::now();
            let replies = match input {
                Input::Data(DataIn::Text(t)) => v.on_text(now, &t),
                Input::Data(DataIn::Binary(b)) => v.on_binary(now, &b),
                Input::Data(DataIn::Closed) => v.on_channel_closed(),
                Input::Nurse(Nurse::Reset) => v.reset(),
                Input::Nurse(Nurse::Pause) => v.pause(),
                Input::Tick => v.on_tick(now),
                Input::Data(_) => Vec::new(),
            };
            let screen = v.screen();
            let status = status_of(&v);
            (v, replies, screen, status)
        });
        let Ok((v, replies, screen, status)) = work.await else {
            tracing::error!("the image viewer failed; shared images are gone for this call");
            break;
        };
        frame_due = v.poll_timeout(Instant::now()).map(tokio::time::Instant::from_std);
        viewer = Some(v);
        for r in &replies {
            if let sc_proto::share::FromKiosk::Done { shown, failed, .. } = r {
                files += (*shown + *failed) as usize;
                // Counts only: names and pixels are clinical content.
                tracing::info!(files = shown + failed, failed, bytes, "image share received");
            }
            match serde_json::to_string(r) {
                Ok(json) => reply.send_text(&json).await,
                Err(e) => tracing::warn!(error = %e, "share reply not serialised"),
            }
        }
        out.screen.send_if_modified(|current| {
            let changed = current.as_deref() != screen.as_ref();
            if changed {
                *current = screen.map(Arc::new);
            }
            changed
        });
        out.status.send_if_modified(|s| {
            let changed = *s != status;
            if changed {
                *s = status;
            }
            changed
        });
    }
    tracing::info!(files, bytes, "shared images dropped");
    out.screen.send_replace(None);
    out.status.send_replace(ImagesStatus::default());
}
