//! Media test fixtures: a coturn relay on loopback, and a Y4M clip of known content for Chromium's
//! fake camera.

use sc_call::wav::Wav;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A coturn TURN server on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Turn {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its UDP listening port.
    pub port: u16,
}

/// turnserver's `--denied-peer-ip` arguments (scripts/turn-denied-peers.txt, the list the demo
/// and the README use), then `--allowed-peer-ip=<relay>`: the relay's own address, which the
/// other peer's relayed address is on.
pub fn denied_peer_args(relay: &str) -> Vec<String> {
    include_str!("../../scripts/turn-denied-peers.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|range| format!("--denied-peer-ip={range}"))
        .chain(std::iter::once(format!("--allowed-peer-ip={relay}")))
        .collect()
}

impl Turn {
    /// Starts coturn with the TURN REST shared secret `secret`.
    pub fn start(secret: &str) -> Self {
        // A free UDP port: bind one, note it, let it go (coturn binds it a moment later).
        let port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("free port").port();
        let relay_lo = 40_000 + (port % 10_000);
        let dir = tempfile::tempdir().expect("turn dir");
        let mut child = Command::new("turnserver")
            .arg(format!("--pidfile={}", dir.path().join("turn.pid").display()))
            .arg(format!("--db={}", dir.path().join("turndb").display()))
            // UDP only: the port was found free for UDP, and a TCP listener on it may find it taken
            // (coturn then retries the bind in its loop and answers allocations late).
            .args([
                "-n",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-tcp",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
            ])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={relay_lo}"))
            .arg(format!("--max-port={}", relay_lo + 200))
            // Loopback peers are allowed only so that the deny list can let 127.0.0.1 (the
            // relay's own address) back in; every other loopback address stays denied.
            .args(denied_peer_args("127.0.0.1"))
            .args([
                "--allow-loopback-peers",
                "--use-auth-secret",
                "--realm=secureconsult.test",
                "--log-file=stdout",
                "--simple-log",
            ])
            .arg(format!("--static-auth-secret={secret}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (Debian package coturn) must be installed: scripts/test.sh installs it");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The last line coturn prints once its listeners and relay threads are up.
                if line.contains("Total General servers") {
                    let _ = tx.send(());
                }
            }
        });
        let start = Instant::now();
        while rx.recv_timeout(Duration::from_millis(100)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(15), "coturn did not start");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("coturn exited: {status}");
            }
        }
        Turn { child, _dir: dir, port }
    }

    /// The URL peers use.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Luma of the clip's left half.
pub const Y4M_LEFT: u8 = 200;
/// Luma of the clip's right half.
pub const Y4M_RIGHT: u8 = 60;

/// Writes a 640x480 I420 clip of `frames` frames: left half bright, right half dark, neutral chroma.
pub fn write_y4m(path: &Path, frames: usize) {
    let (w, h) = (640usize, 480usize);
    let mut frame = Vec::with_capacity(w * h * 3 / 2);
    for _ in 0..h {
        frame.extend(std::iter::repeat_n(Y4M_LEFT, w / 2));
        frame.extend(std::iter::repeat_n(Y4M_RIGHT, w / 2));
    }
    frame.resize(w * h * 3 / 2, 128);
    let mut out = format!("YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..frames {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).expect("write y4m");
}

/// What the consultant says on the shaped links: a doctor's opening questions, with the pauses
/// of a conversation between sentences.
const CONSULTANT_SAYS: &str = "Good morning. I am the doctor on call today. Can you tell me where it hurts, \
    and how long you have had the pain? Please breathe in slowly, and out again. Does it hurt more when you \
    move your arm? Thank you. I am going to look at your X-ray now.";

/// Writes what the consultant says ([`CONSULTANT_SAYS`], spoken by espeak-ng and resampled to 48
/// kHz) as a 16-bit mono WAV file, for Chromium's fake microphone (`--use-file-for-fake-audio-capture`,
/// which loops it) and the kiosk's (`sc_call::wav::WavLoop`, the clip's `<clip>.wav`): on the
/// shaped links every peer says the same. A voice Opus hears as speech: told nothing of the signal (libwebrtc tells it
/// nothing), libopus coded the kiosk's synthetic voice (`sc_call::source::Voice`) as music, CELT
/// for 95 % of its packets, which carry no in-band FEC, so every packet of Chromium's lost on the
/// way was concealed whole, where a person's voice is coded as speech and most come back from the
/// next packet; espeak-ng's voice is coded as speech (SILK, FEC in 78 % of its packets, the rest
/// pauses).
pub fn write_voice_wav(path: &Path) {
    let spoken = tempfile::NamedTempFile::new().expect("a temporary file");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-gb", "-s", "150", "-w"])
        .arg(spoken.path())
        .arg(CONSULTANT_SAYS)
        .status()
        .expect("espeak-ng, which scripts/test.sh and scripts/bench.sh install");
    assert!(status.success(), "espeak-ng failed: {status}");
    let bytes = std::fs::read(spoken.path()).expect("espeak-ng's WAV");
    let spoken = Wav::parse(&bytes).expect("espeak-ng writes 16-bit mono PCM WAV");
    let input: Vec<f32> = spoken.samples.iter().map(|&s| f32::from(s) / 32_768.0).collect();
    let mut resampler = sc_call::convert::Resampler::new(spoken.rate, 1, 48_000, 1);
    let mut samples: Vec<i16> = resampler.process(&input).iter().map(|&f| (f * 32_767.0) as i16).collect();
    // A second of quiet before the loop starts again, as between one question and the next.
    samples.extend(std::iter::repeat_n(0, 48_000));
    std::fs::write(path, Wav { rate: 48_000, samples }.to_bytes()).expect("write wav");
}

/// Writes the 640x480, 30 fps clip that costs what a camera costs to encode
/// (`sc_call::camera_clip`), for the shaped-link tests and the benchmark (both peers send it).
pub fn write_camera_clip(path: &Path) {
    std::fs::write(path, sc_call::camera_clip::y4m()).expect("write y4m");
}
