//! Media test fixtures: a coturn relay on loopback, and a Y4M clip of known content for Chromium's
//! fake camera.

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

/// Writes the kiosk's synthetic voice ([`sc_call::source::Voice`], one loop of it) as a 48 kHz
/// 16-bit mono WAV file, for Chromium's fake microphone (`--use-file-for-fake-audio-capture`,
/// which loops it): on the shaped links both peers then say the same thing.
pub fn write_voice_wav(path: &Path) {
    use sc_call::source::{AudioSource as _, Voice};
    let mut voice = Voice::new(0.3);
    let mut samples = Vec::new();
    let mut stereo = vec![0i16; 1920];
    for _ in 0..Voice::PERIOD_SECS * 50 {
        voice.fill(&mut stereo);
        samples.extend(stereo.iter().step_by(2).copied());
    }
    let data = u32::try_from(samples.len() * 2).expect("a short clip");
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    // PCM, 1 channel, 48 kHz, 96,000 bytes/s, 2-byte frames, 16 bits.
    for field in [16u32.to_le_bytes().as_slice(), &1u16.to_le_bytes(), &1u16.to_le_bytes(), &48_000u32.to_le_bytes()] {
        out.extend_from_slice(field);
    }
    for field in [96_000u32.to_le_bytes().as_slice(), &2u16.to_le_bytes(), &16u16.to_le_bytes()] {
        out.extend_from_slice(field);
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).expect("write wav");
}

/// Writes the 640x480, 30 fps clip that costs what a camera costs to encode
/// (`sc_call::camera_clip`), for the shaped-link tests and the benchmark (both peers send it).
pub fn write_camera_clip(path: &Path) {
    std::fs::write(path, sc_call::camera_clip::y4m()).expect("write y4m");
}
