//! Offer and answer: applying the other side's description and candidates (held until the
//! description is in), ICE restarts on the same relay, and new offers for the voice's format.

use super::{Call, CallEvent, VoiceFormats};
use crate::adapt::{VoiceFormat, AUDIO_LONG_FRAME_MS};
use crate::Error;
use sc_proto::signal::{FromServer, Role, ToServer};
use std::sync::atomic::Ordering;
use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription};

/// `sdp` with its audio section asking for `ms` of speech per packet (`a=ptime`, RFC 4566; the
/// last line of the section, where attributes go). A receiver's wish: rtc writes none, and nothing
/// on the kiosk's side reads it, so it is added to the text sent rather than the description set.
fn with_ptime(sdp: &str, ms: u8) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut in_audio = false;
    let mut added = false;
    let line = format!("a=ptime:{ms}\r\n");
    for l in sdp.split_inclusive('\n') {
        if l.starts_with("m=") {
            if in_audio && !added {
                out.push_str(&line);
                added = true;
            }
            in_audio = l.starts_with("m=audio");
        }
        if !(in_audio && l.starts_with("a=ptime:")) {
            out.push_str(l);
        }
    }
    if in_audio && !added {
        out.push_str(&line);
    }
    out
}

/// `sdp`'s lines (each with its line end), split before each `m=` line: the session's lines
/// first, then each media section's.
fn sections(sdp: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    for l in sdp.split_inclusive('\n') {
        match out.last_mut() {
            Some(section) if !l.starts_with("m=") => section.push(l),
            _ => out.push(vec![l]),
        }
    }
    out
}

/// Whether a section (from [`sections`]) is a receive-only video section.
fn receive_only_video(section: &[&str]) -> bool {
    section.first().is_some_and(|m| m.starts_with("m=video")) && section.iter().any(|l| l.trim_end() == "a=recvonly")
}

/// `sdp` with its receive-only video sections naming no RED, no ULPFEC and no RTX for RED (the
/// kiosk's offer for the consultant's video when the two directions are negotiated apart,
/// `engine::split_video`). The kiosk can receive them and its own description says so, but the
/// text sent is all the peer goes by, and a peer told of ULPFEC there would protect its video
/// with it. Other sections pass unchanged.
pub(super) fn plain_receive_video(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for section in sections(sdp) {
        // Every section has its first line (`sections` starts one at a line).
        let first = section[0];
        if !receive_only_video(&section) {
            section.iter().for_each(|l| out.push_str(l));
            continue;
        }
        let attribute_pt = |l: &str, attribute: &str| {
            let (pt, rest) = l.strip_prefix(attribute)?.split_once(' ')?;
            Some((pt.to_owned(), rest.trim().to_ascii_lowercase()))
        };
        let mut dropped: Vec<String> = section
            .iter()
            .filter_map(|l| attribute_pt(l, "a=rtpmap:"))
            .filter(|(_, codec)| codec == "red/90000" || codec == "ulpfec/90000")
            .map(|(pt, _)| pt)
            .collect();
        let red_rtx: Vec<String> = section
            .iter()
            .filter_map(|l| attribute_pt(l, "a=fmtp:"))
            .filter(|(_, params)| params.strip_prefix("apt=").is_some_and(|apt| dropped.iter().any(|d| d == apt)))
            .map(|(pt, _)| pt)
            .collect();
        dropped.extend(red_rtx);
        let names_dropped = |l: &str| {
            ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
                .iter()
                .any(|a| attribute_pt(l, a).is_some_and(|(pt, _)| dropped.contains(&pt)))
        };
        // "m=video <port> <proto> <formats...>"
        let body = first.trim_end();
        let m_line: Vec<&str> = body
            .split(' ')
            .enumerate()
            .filter(|(i, f)| *i < 3 || !dropped.iter().any(|d| d == f))
            .map(|(_, f)| f)
            .collect();
        out.push_str(&m_line.join(" "));
        out.push_str(&first[body.len()..]);
        section.iter().skip(1).filter(|l| !names_dropped(l)).for_each(|l| out.push_str(l));
    }
    out
}

/// `sdp` with its receive-only video sections asking the peer to start its sending at `kbps`
/// (`x-google-start-bitrate` on VP8's format: Chromium takes its congestion controller's start
/// from the codecs it is told to send with; the same value in every offer starts nothing again).
/// For a link whose limit the last call measured (`crate::link_memory`): Chromium otherwise starts
/// at 300 kbit/s and probes over it, however slow the link, and on the audio-only profile
/// (64 kbit/s) the kiosk's way down queued over a second at each call's start.
pub(super) fn with_peer_start(sdp: &str, kbps: u32) -> String {
    // Whether line `l` is attribute `attribute` ("a=fmtp:") for payload type `pt`.
    fn names(l: &str, attribute: &str, pt: &str) -> bool {
        l.strip_prefix(attribute).and_then(|r| r.strip_prefix(pt)).is_some_and(|r| r.starts_with(' '))
    }
    let param = format!("x-google-start-bitrate={kbps}");
    let mut out = String::with_capacity(sdp.len() + 64);
    for section in sections(sdp) {
        let receive_only = receive_only_video(&section);
        let vp8: Vec<&str> = section
            .iter()
            .filter(|_| receive_only)
            .filter_map(|l| l.strip_prefix("a=rtpmap:")?.split_once(' '))
            .filter(|(_, codec)| codec.trim().eq_ignore_ascii_case("vp8/90000"))
            .map(|(pt, _)| pt)
            .collect();
        for l in &section {
            if vp8.iter().any(|pt| names(l, "a=fmtp:", pt)) {
                // VP8's own format line: the start added to it.
                let body = l.trim_end();
                out.push_str(&format!("{body};{param}{}", &l[body.len()..]));
                continue;
            }
            out.push_str(l);
            let no_fmtp = |pt: &str| names(l, "a=rtpmap:", pt) && !section.iter().any(|m| names(m, "a=fmtp:", pt));
            if let Some(pt) = vp8.iter().find(|pt| no_fmtp(pt)) {
                out.push_str(&format!("a=fmtp:{pt} {param}\r\n"));
            }
        }
    }
    out
}

/// The ICE username fragment a description names (its first).
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).map(str::trim)
}

impl Call {
    async fn flush_candidates(&self) {
        let pending: Vec<_> = std::mem::take(&mut *crate::lock(&self.pending));
        for c in pending {
            if let Err(e) = self.pc.add_ice_candidate(c).await {
                tracing::debug!(error = %e, "remote candidate refused");
            }
        }
    }

    /// Handles a signalling message from the other side.
    pub async fn handle(&self, msg: FromServer) -> Result<(), Error> {
        match msg {
            FromServer::Offer { sdp } if self.role == Role::Answerer => {
                let offer = RTCSessionDescription::offer(sdp).map_err(|e| Error::Signalling(e.to_string()))?;
                let types = crate::fec_send::agreed_types(&offer.sdp);
                self.pc.set_remote_description(offer).await.map_err(|e| Error::Signalling(e.to_string()))?;
                self.shared.fec.set_types(types);
                self.remote_set.store(true, Ordering::SeqCst);
                self.flush_candidates().await;
                let answer = self.pc.create_answer(None).await.map_err(Error::webrtc)?;
                let sdp = answer.sdp.clone();
                self.pc.set_local_description(answer).await.map_err(Error::webrtc)?;
                self.shared.emit(CallEvent::Signal(ToServer::Answer { sdp }));
                Ok(())
            }
            // The first answer, or the answer to an ICE restart's or a voice format's offer; any
            // other is out of turn.
            FromServer::Answer { sdp }
                if self.role == Role::Offerer
                    && (!self.remote_set.load(Ordering::SeqCst)
                        || self.restarting.load(Ordering::SeqCst)
                        || self.voice.pending.load(Ordering::SeqCst)) =>
            {
                // An ICE restart superseded a voice format's offer: that offer's answer still
                // names the old ICE credentials, and applied to the restart's offer it would
                // break the restart. Its format went out with the restart's offer anyway.
                if self.restarting.load(Ordering::SeqCst) {
                    let current = self.pc.remote_description().await.map(|d| d.sdp);
                    if current.as_deref().and_then(ice_ufrag).is_some_and(|old| ice_ufrag(&sdp) == Some(old)) {
                        tracing::info!("an answer to a superseded offer, ignored");
                        return Ok(());
                    }
                }
                // What the peer agreed to per media section (its codecs' feedback and header
                // extensions; no credentials or fingerprints), for diagnosing congestion feedback.
                let agreed: Vec<&str> = sdp
                    .lines()
                    .filter(|l| l.starts_with("m=") || l.starts_with("a=extmap:") || l.starts_with("a=rtcp-fb:"))
                    .collect();
                tracing::debug!(agreed = ?agreed, "remote answer");
                // Whatever becomes of this answer, no offer waits for another: a format's offer
                // whose answer failed is not retried until the format is asked to change again.
                self.voice.pending.store(false, Ordering::SeqCst);
                let types = crate::fec_send::agreed_types(&sdp);
                let answer = RTCSessionDescription::answer(sdp).map_err(|e| Error::Signalling(e.to_string()))?;
                self.pc.set_remote_description(answer).await.map_err(|e| Error::Signalling(e.to_string()))?;
                self.shared.fec.set_types(types);
                self.remote_set.store(true, Ordering::SeqCst);
                self.restarting.store(false, Ordering::SeqCst);
                self.flush_candidates().await;
                // A change of voice format asked for while this offer was out goes now.
                if let Err(e) = self.offer_voice_format().await {
                    tracing::warn!(error = %e, "the voice format was not offered");
                }
                Ok(())
            }
            FromServer::Candidate { candidate } => {
                let init = RTCIceCandidateInit {
                    candidate: candidate.candidate,
                    sdp_mid: candidate.sdp_mid,
                    sdp_mline_index: candidate.sdp_m_line_index,
                    ..Default::default()
                };
                if self.remote_set.load(Ordering::SeqCst) {
                    self.pc.add_ice_candidate(init).await.map_err(|e| Error::Signalling(e.to_string()))
                } else {
                    crate::lock(&self.pending).push(init);
                    Ok(())
                }
            }
            other => Err(Error::Signalling(format!("{other:?}").chars().take(80).collect())),
        }
    }

    /// Restarts ICE (the offerer only): a new offer with fresh credentials goes out as a
    /// `CallEvent::Signal`, and candidates are gathered again on the same relay; the media, DTLS
    /// and the share channel carry on once the new path connects. Until the answer comes,
    /// another restart is refused.
    pub async fn restart_ice(&self) -> Result<(), Error> {
        if self.role != Role::Offerer {
            return Err(Error::Signalling("only the offerer restarts ICE".into()));
        }
        if self.restarting.swap(true, Ordering::SeqCst) {
            return Err(Error::Signalling("an ICE restart is already waiting for its answer".into()));
        }
        // A voice format's offer still waiting is superseded: this offer carries the format too.
        self.voice.pending.store(false, Ordering::SeqCst);
        let started = async {
            self.pc.restart_ice().await.map_err(Error::webrtc)?;
            // The voice's format as last offered: the transceiver lists its codecs so.
            self.local_offer(VoiceFormats::format(self.voice.offered.load(Ordering::SeqCst))).await
        };
        match started.await {
            Ok(sdp) => {
                self.shared.counters.ice_restarts.fetch_add(1, Ordering::Relaxed);
                self.shared.emit(CallEvent::Signal(ToServer::Offer { sdp }));
                Ok(())
            }
            Err(e) => {
                self.restarting.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// A new offer, set as the local description; its SDP, to send, asking for the voice in
    /// `format`'s packets and naming no FEC for the consultant's video ([`plain_receive_video`]).
    pub(super) async fn local_offer(&self, format: VoiceFormat) -> Result<String, Error> {
        let offer = self.pc.create_offer(None).await.map_err(Error::webrtc)?;
        let sdp = plain_receive_video(&offer.sdp);
        let sdp = match self.peer_start_kbps {
            Some(kbps) => with_peer_start(&sdp, kbps),
            None => sdp,
        };
        self.pc.set_local_description(offer).await.map_err(Error::webrtc)?;
        Ok(if format == VoiceFormat::LongRed { with_ptime(&sdp, AUDIO_LONG_FRAME_MS) } else { sdp })
    }

    /// Asks the consultant's browser to send its voice in `format` ([`VoiceFormat`]), by a new
    /// offer listing that format first. While another offer waits for its answer, or before the
    /// first answer, the new one follows that answer.
    pub async fn set_voice_format(&self, format: VoiceFormat) -> Result<(), Error> {
        self.voice.wanted.store(VoiceFormats::code(format), Ordering::SeqCst);
        self.offer_voice_format().await
    }

    async fn offer_voice_format(&self) -> Result<(), Error> {
        let want = self.voice.wanted.load(Ordering::SeqCst);
        // An ICE restart's offer is not held up by this one (an answer that never comes must not
        // stop the call from reconnecting), but this one waits for the restart's answer.
        if self.role != Role::Offerer
            || !self.remote_set.load(Ordering::SeqCst)
            || want == self.voice.offered.load(Ordering::SeqCst)
            || self.restarting.load(Ordering::SeqCst)
            || self.voice.pending.swap(true, Ordering::SeqCst)
        {
            return Ok(());
        }
        let started = async {
            self.voice.prefer(VoiceFormats::format(want)).await?;
            self.local_offer(VoiceFormats::format(want)).await
        };
        match started.await {
            Ok(sdp) => {
                self.voice.offered.store(want, Ordering::SeqCst);
                tracing::info!(format = ?VoiceFormats::format(want), "offering the voice's format");
                self.shared.emit(CallEvent::Signal(ToServer::Offer { sdp }));
                Ok(())
            }
            Err(e) => {
                self.voice.pending.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Whether the other side's session description has been applied.
    pub fn has_remote_description(&self) -> bool {
        self.remote_set.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::{ice_ufrag, plain_receive_video, with_peer_start, with_ptime};

    /// Issue #12: on a link the last call measured, the consultant's browser is told where to
    /// start sending: on the receive-only section's VP8 only, an fmtp line added or extended.
    #[test]
    fn issue_12_the_peers_start_is_asked_on_the_receive_only_vp8() {
        let sdp = "v=0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10\r\n";
        let out = with_peer_start(sdp, 47);
        assert_eq!(out.matches("x-google-start-bitrate").count(), 1, "{out}");
        assert!(
            out.contains(
                "a=recvonly\r\na=rtpmap:96 VP8/90000\r\na=fmtp:96 x-google-start-bitrate=47\r\na=rtcp-fb:96 nack"
            ),
            "{out}"
        );
        assert!(out.contains("a=fmtp:97 apt=96\r\n"), "RTX untouched: {out}");
        // A format line of its own is extended.
        let with_fmtp = sdp.replace("a=rtcp-fb:96 nack", "a=fmtp:96 max-fr=30\r\na=rtcp-fb:96 nack");
        let out = with_peer_start(&with_fmtp, 47);
        assert!(out.contains("a=fmtp:96 max-fr=30;x-google-start-bitrate=47\r\n"), "{out}");
        assert_eq!(out.matches("a=fmtp:96").count(), 1, "{out}");
        assert_eq!(with_peer_start(&with_fmtp, 47).len(), with_fmtp.len() + ";x-google-start-bitrate=47".len());
    }

    /// Issue #12: with the directions apart, the consultant's video is offered plain (VP8 and its
    /// RTX), so Chromium protects nothing it sends; the kiosk's own section keeps RED and ULPFEC.
    #[test]
    fn issue_12_the_receive_only_video_is_offered_without_fec() {
        let section = |direction: &str| {
            format!(
                "m=video 9 UDP/TLS/RTP/SAVPF 96 97 116 117 118\r\na=mid:{direction}\r\na={direction}\r\n\
                 a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
                 a=rtpmap:116 red/90000\r\na=rtcp-fb:116 nack\r\na=rtpmap:117 rtx/90000\r\na=fmtp:117 apt=116\r\n\
                 a=rtpmap:118 ulpfec/90000\r\n"
            )
        };
        let audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n";
        let sdp = format!("v=0\r\na=group:BUNDLE 0 1\r\n{}{}{audio}", section("recvonly"), section("sendonly"));
        let want = format!(
            "v=0\r\na=group:BUNDLE 0 1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:recvonly\r\na=recvonly\r\n\
             a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n{}{audio}",
            section("sendonly")
        );
        assert_eq!(plain_receive_video(&sdp), want);
        // One video section both ways (FEC off, or named both ways): nothing changes.
        let both = format!("v=0\r\n{}{audio}", section("sendrecv"));
        assert_eq!(plain_receive_video(&both), both);
    }

    #[test]
    fn the_ice_username_fragment_is_read_from_a_description() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:AbCd\r\na=ice-pwd:x\r\n";
        assert_eq!(ice_ufrag(sdp), Some("AbCd"));
        assert_eq!(ice_ufrag("v=0\r\n"), None);
    }

    /// Issue #12: the page's voice in long packets on a slow link is asked for by the audio
    /// section's `a=ptime`, at its end; no other section changes, and an earlier one is replaced.
    #[test]
    fn issue_12_the_audio_section_asks_for_long_packets() {
        let sdp = "v=0\r\nm=video 9 X 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 9 X 111 63\r\nc=IN IP4 0.0.0.0\r\n\
                   a=rtpmap:111 opus/48000/2\r\na=ptime:20\r\na=rtpmap:63 red/48000/2\r\nm=application 9 Y\r\na=x\r\n";
        assert_eq!(
            with_ptime(sdp, 60),
            "v=0\r\nm=video 9 X 96\r\na=rtpmap:96 VP8/90000\r\nm=audio 9 X 111 63\r\nc=IN IP4 0.0.0.0\r\n\
             a=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\na=ptime:60\r\nm=application 9 Y\r\na=x\r\n"
        );
        // The audio section last.
        assert_eq!(
            with_ptime("v=0\r\nm=audio 9 X 111\r\na=y\r\n", 60),
            "v=0\r\nm=audio 9 X 111\r\na=y\r\na=ptime:60\r\n"
        );
        // No audio section: nothing to ask.
        assert_eq!(with_ptime("v=0\r\nm=video 9 X 96\r\n", 60), "v=0\r\nm=video 9 X 96\r\n");
    }
}
