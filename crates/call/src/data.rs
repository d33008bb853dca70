//! The call's data channel for image shares: the kiosk opens it in its offer, a consultant page
//! may open a new one after a cut, and whichever opened last is the one in use. Messages go to the
//! viewer through a bounded queue, so a slow viewer slows the channel (SCTP's window closes and
//! the browser's `bufferedAmount` grows) instead of piling bytes up in memory.

use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

/// What the data channel delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataIn {
    /// A share channel opened.
    Open,
    /// A text message (JSON, in the share protocol).
    Text(String),
    /// A binary message (a file chunk).
    Binary(Vec<u8>),
    /// The share channel closed (a consultant may open another).
    Closed,
}

/// Messages queued towards the viewer before the channel stops being read.
const QUEUE: usize = 32;

/// The channel in use, and the queue to the viewer.
pub(crate) struct DataLink {
    current: Mutex<Option<Arc<dyn DataChannel>>>,
    tx: mpsc::Sender<DataIn>,
}

impl DataLink {
    pub(crate) fn new() -> (Arc<DataLink>, mpsc::Receiver<DataIn>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Arc::new(DataLink { current: Mutex::new(None), tx }), rx)
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Arc<dyn DataChannel>>> {
        // Replaced whole, so a poisoned lock still holds a sound value.
        crate::lock(&self.current)
    }

    /// Makes `channel` the one in use and reads it until it closes.
    ///
    /// A consultant page opens a new channel as soon as its old one is cut, which can be before
    /// the viewer has been handed the old one's last messages (decoding is slower than the link).
    /// The viewer must still hear that the old one closed, and before anything from the new one:
    /// so adopting a channel ends the previous one's reading at its next message and queues
    /// `Closed` for it first.
    pub(crate) fn adopt(self: &Arc<Self>, channel: Arc<dyn DataChannel>) -> tokio::task::JoinHandle<()> {
        let replaced = self.current().replace(channel.clone()).is_some();
        let link = self.clone();
        tokio::spawn(async move {
            if replaced && link.tx.send(DataIn::Closed).await.is_err() {
                return;
            }
            while let Some(event) = channel.poll().await {
                let item = match event {
                    DataChannelEvent::OnOpen => DataIn::Open,
                    DataChannelEvent::OnMessage(m) if m.is_string => {
                        DataIn::Text(String::from_utf8_lossy(&m.data).into_owned())
                    }
                    DataChannelEvent::OnMessage(m) => DataIn::Binary(m.data.to_vec()),
                    DataChannelEvent::OnClose => break,
                    _ => continue,
                };
                if !link.is_current(&channel) {
                    return; // replaced: `adopt` told the viewer this one closed
                }
                if link.tx.send(item).await.is_err() {
                    return; // the viewer is gone: the call is ending
                }
            }
            let still_current = {
                let mut current = link.current();
                let same = current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &channel));
                if same {
                    *current = None;
                }
                same
            };
            if still_current {
                let _ = link.tx.send(DataIn::Closed).await;
            }
        })
    }

    fn is_current(&self, channel: &Arc<dyn DataChannel>) -> bool {
        self.current().as_ref().is_some_and(|c| Arc::ptr_eq(c, channel))
    }

    /// Sends a text message on the channel in use; nothing happens when there is none.
    pub(crate) async fn send_text(&self, text: &str) {
        let channel = self.current().clone();
        if let Some(c) = channel {
            if let Err(e) = c.send_text(text).await {
                tracing::debug!(error = %e, "share reply not sent");
            }
        }
    }
}

/// Sends the kiosk's share replies; cheap to clone.
#[derive(Clone)]
pub struct DataSender(pub(crate) Arc<DataLink>);

impl std::fmt::Debug for DataSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataSender")
    }
}

impl DataSender {
    /// Sends a JSON text message on the share channel in use (dropped when none is open).
    pub async fn send_text(&self, text: &str) {
        self.0.send_text(text).await;
    }
}
