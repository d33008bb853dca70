//! The shaped-link harness (issue #12, point 1) does what it says: loss is lost and counted, zero loss
//! loses nothing, an outage cuts UDP and TCP and ends, the delay relay delays, tbf limits the rate,
//! schedules apply, and nothing is left behind after a drop (also after a panic).
//! Datagrams are sent and received by small Python helpers started inside the namespaces.

use sc_e2e::link::{Change, Event, Link, Profile, Side};
use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The helpers, one script, the mode in argv[1]:
/// - `recv BIND`: counts UDP datagrams (and accepts TCP connections) on BIND until stdin closes,
///   then prints {"count", "bytes", "span"} (span: first to last arrival, seconds).
/// - `send DST COUNT SIZE EVERY PAUSE_MS`: sends COUNT datagrams of SIZE bytes, pausing PAUSE_MS after
///   every EVERY of them.
/// - `echo BIND`: sends every datagram back.
/// - `ping DST COUNT`: COUNT round trips to an echo, prints the round-trip times in ms.
/// - `tcp DST TIMEOUT_S`: prints "ok" if a TCP connection opens in time, else "fail".
const HELPER: &str = r#"
import json, select, socket, sys, time
mode = sys.argv[1]
def addr(s):
    host, port = s.rsplit(":", 1)
    return (host, int(port))
if mode == "recv":
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # SO_RCVBUFFORCE (root): a burst must never overflow the receiver, or we would count our own loss.
    u.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)
    u.bind(addr(sys.argv[2]))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(addr(sys.argv[2]))
    t.listen(16)
    print("ready", flush=True)
    count = nbytes = 0
    first = last = None
    while True:
        r, _, _ = select.select([u, sys.stdin], [], [])
        if u in r:
            n = len(u.recv(65536))
            last = time.monotonic()
            first = first or last
            count += 1
            nbytes += n
        if sys.stdin in r and not sys.stdin.readline():
            break
    print(json.dumps({"count": count, "bytes": nbytes, "span": (last - first) if first else 0.0}), flush=True)
elif mode == "send":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dst, count, size, every, pause = addr(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    for i in range(count):
        s.sendto(i.to_bytes(4, "big") + bytes(size - 4), dst)
        if every and (i + 1) % every == 0:
            time.sleep(pause / 1000)
    print("sent", count, flush=True)
elif mode == "echo":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr(sys.argv[2]))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)
elif mode == "ping":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    dst, rtts = addr(sys.argv[2]), []
    for i in range(int(sys.argv[3])):
        t0 = time.monotonic()
        s.sendto(i.to_bytes(4, "big"), dst)
        while s.recv(65536) != i.to_bytes(4, "big"):
            pass
        rtts.append((time.monotonic() - t0) * 1000)
    print(json.dumps(rtts), flush=True)
elif mode == "tcp":
    try:
        socket.create_connection(addr(sys.argv[2]), timeout=float(sys.argv[3])).close()
        print("ok", flush=True)
    except OSError:
        print("fail", flush=True)
"#;

/// A helper running in a namespace, killed if the test fails before it ends.
struct Helper(Child);

impl Helper {
    fn start(link: &Link, side: Side, args: &[&str]) -> Self {
        let child = link
            .command(side, "python3")
            .args(["-c", HELPER])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (scripts/lib.sh installs it)");
        Helper(child)
    }

    /// Waits for the helper's "ready" (it has bound its sockets).
    fn ready(mut self) -> Self {
        let stdout = self.0.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("helper output");
        assert_eq!(line.trim(), "ready", "helper did not start");
        self.0.stdout = Some(reader.into_inner());
        self
    }

    /// Closes stdin and returns the last line of stdout, within `limit`.
    fn finish(mut self, limit: Duration) -> String {
        drop(self.0.stdin.take());
        let start = Instant::now();
        while self.0.try_wait().expect("helper status").is_none() {
            assert!(start.elapsed() < limit, "helper took longer than {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        let stdout = self.0.stdout.take().expect("piped stdout");
        for line in BufReader::new(stdout).lines() {
            out = line.expect("helper output");
        }
        out
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Result of one burst from the kiosk to the hospital.
#[derive(Debug)]
struct Received {
    count: u64,
    bytes: u64,
    span: f64,
}

/// Sends `count` datagrams of `size` bytes kiosk -> hospital (a pause of `pause_ms` after every `every`)
/// and counts what arrives, waiting `settle` after the last send for stragglers.
fn burst(link: &Link, port: u16, count: u32, size: u32, every: u32, pause_ms: f64, settle: Duration) -> Received {
    let dst = SocketAddr::from((link.addr(Side::Hospital), port)).to_string();
    let receiver = Helper::start(link, Side::Hospital, &["recv", &dst]).ready();
    let sender = Helper::start(
        link,
        Side::Kiosk,
        &["send", &dst, &count.to_string(), &size.to_string(), &every.to_string(), &pause_ms.to_string()],
    );
    let sent = sender.finish(Duration::from_secs(15));
    assert_eq!(sent, format!("sent {count}"), "the sender failed");
    std::thread::sleep(settle);
    let out: Value = serde_json::from_str(&receiver.finish(Duration::from_secs(5))).expect("receiver's JSON");
    Received {
        count: out["count"].as_u64().expect("count"),
        bytes: out["bytes"].as_u64().expect("bytes"),
        span: out["span"].as_f64().expect("span"),
    }
}

#[test]
fn issue_12_loss_is_real_counted_and_can_be_cleared() {
    let link = Link::new(Profile { loss_up_pct: 5, ..Profile::unshaped() });
    // Paced (20 per ms pause) so that only the rule can lose anything.
    let got = burst(&link, 5000, 2000, 200, 20, 1.0, Duration::from_millis(300));
    let lost = 2000 - got.count;
    let drops = link.drops(Side::Hospital);
    eprintln!("5% loss: {lost} of 2000 lost, nft counted {drops:?}");
    assert!((20..=300).contains(&lost), "5% loss lost {lost} of 2000");
    // Equal, not just non-zero: every datagram lost was lost to the rule, none to the receiver.
    assert_eq!(drops.loss, lost, "the loss counter disagrees with the count: {drops:?}");
    assert_eq!(link.drops(Side::Kiosk).loss, 0, "nothing crossed towards the kiosk");

    link.set_loss(0);
    let got = burst(&link, 5001, 2000, 200, 20, 1.0, Duration::from_millis(300));
    assert_eq!(got.count, 2000, "with no loss nothing may be lost");
    assert_eq!(link.drops(Side::Hospital).loss, drops.loss, "the counter moved with no loss rule");
}

#[test]
fn issue_12_an_outage_cuts_udp_and_tcp_and_ends() {
    let link = Link::new(Profile::good());
    let dst = SocketAddr::from((link.addr(Side::Hospital), 5002)).to_string();
    let tcp = |link: &Link| Helper::start(link, Side::Kiosk, &["tcp", &dst, "1"]).finish(Duration::from_secs(10));

    link.outage(true);
    let got = burst(&link, 5002, 200, 200, 20, 1.0, Duration::from_millis(300));
    assert_eq!(got.count, 0, "an outage let datagrams through");
    let listener = Helper::start(&link, Side::Hospital, &["recv", &dst]).ready();
    assert_eq!(tcp(&link), "fail", "an outage let a TCP connection open");
    drop(listener);
    let drops = link.drops(Side::Hospital);
    assert!(drops.outage >= 200, "the outage counter: {drops:?}");

    link.outage(false);
    let got = burst(&link, 5002, 200, 200, 20, 1.0, Duration::from_millis(300));
    assert_eq!(got.count, 200, "the link did not come back after the outage");
    let listener = Helper::start(&link, Side::Hospital, &["recv", &dst]).ready();
    assert_eq!(tcp(&link), "ok", "TCP did not come back after the outage");
    drop(listener);
}

#[test]
fn issue_12_a_udp_outage_cuts_udp_but_lets_tcp_through() {
    let link = Link::new(Profile::good());
    let dst = SocketAddr::from((link.addr(Side::Hospital), 5004)).to_string();
    let tcp = |link: &Link| Helper::start(link, Side::Kiosk, &["tcp", &dst, "1"]).finish(Duration::from_secs(10));

    link.udp_outage(true);
    let got = burst(&link, 5004, 200, 200, 20, 1.0, Duration::from_millis(300));
    assert_eq!(got.count, 0, "a UDP outage let datagrams through");
    let listener = Helper::start(&link, Side::Hospital, &["recv", &dst]).ready();
    assert_eq!(tcp(&link), "ok", "a UDP outage cut TCP too");
    drop(listener);

    link.udp_outage(false);
    let got = burst(&link, 5004, 200, 200, 20, 1.0, Duration::from_millis(300));
    assert_eq!(got.count, 200, "UDP did not come back");
}

#[test]
fn issue_12_the_delay_relay_adds_its_delay_both_ways() {
    let link = Link::new(Profile { delay_ms: 100, jitter_ms: 20, ..Profile::unshaped() });
    let echo_addr = SocketAddr::from((link.addr(Side::Hospital), 5003));
    let _echo = Helper::start(&link, Side::Hospital, &["echo", &echo_addr.to_string()]).ready();
    let ping = |to: SocketAddr| -> Vec<f64> {
        let out = Helper::start(&link, Side::Kiosk, &["ping", &to.to_string(), "10"]).finish(Duration::from_secs(30));
        serde_json::from_str(&out).expect("round-trip times")
    };

    let direct = ping(echo_addr);
    let relay = link.delay_relay(echo_addr);
    let relayed = ping(relay.addr());
    eprintln!("round trips, ms: direct {direct:.1?}, through the relay {relayed:.1?}");
    assert!(direct.iter().all(|&ms| ms < 100.0), "the link itself is slow: {direct:?}");
    // 100 ms each way is the floor; the jitter (0..=20 ms each way) only adds.
    assert!(relayed.iter().all(|&ms| ms >= 190.0), "the relay delayed less than 2 x 100 ms: {relayed:?}");
    assert!(relayed.iter().all(|&ms| ms < 2000.0), "the relay delayed far too much: {relayed:?}");
}

#[test]
fn issue_12_tbf_limits_the_rate_and_changes_at_run_time() {
    let link = Link::new(Profile { rate_kbit: Some(512), ..Profile::unshaped() });
    assert!(link.qdisc(Side::Kiosk).contains("rate 512Kbit"), "{}", link.qdisc(Side::Kiosk));
    assert!(link.qdisc(Side::Hospital).contains("rate 512Kbit"), "{}", link.qdisc(Side::Hospital));
    // 300 datagrams of 1000 bytes at about 2 Mbit/s (4 every 16 ms) for 1.2 s: four times the rate.
    let got = burst(&link, 5004, 300, 1000, 4, 16.0, Duration::from_millis(800));
    let kbit = (got.bytes.saturating_sub(1000) * 8) as f64 / got.span / 1000.0;
    eprintln!("512 kbit tbf: {} of 300 arrived over {:.2} s, {kbit:.0} kbit/s", got.count, got.span);
    assert!(got.count < 300, "tbf let 2 Mbit/s through a 512 kbit/s link");
    // Generous: the 8 KiB burst lets a little more through at first.
    assert!((256.0..=700.0).contains(&kbit), "512 kbit tbf carried {kbit:.0} kbit/s");

    link.set_rate(None);
    assert!(!link.qdisc(Side::Kiosk).contains("tbf"), "{}", link.qdisc(Side::Kiosk));
    let got = burst(&link, 5005, 300, 1000, 4, 16.0, Duration::from_millis(300));
    assert_eq!(got.count, 300, "the unshaped link lost datagrams");

    link.set_rate(Some(2000));
    link.set_rate(Some(300));
    assert!(link.qdisc(Side::Hospital).contains("rate 300Kbit"), "{}", link.qdisc(Side::Hospital));
}

#[test]
fn issue_12_a_schedule_applies_its_steps() {
    let profile = Profile {
        schedule: vec![
            Event { at: Duration::from_millis(100), change: Change::Rate(Some(300)) },
            Event { at: Duration::from_millis(200), change: Change::Outage(true) },
            Event { at: Duration::from_millis(300), change: Change::Outage(false) },
            Event { at: Duration::from_millis(400), change: Change::Rate(Some(2000)) },
        ],
        ..Profile::step(Duration::ZERO, Duration::ZERO)
    };
    let link = Link::new(profile);
    assert!(link.qdisc(Side::Kiosk).contains("rate 2Mbit"), "{}", link.qdisc(Side::Kiosk));
    link.start_schedule();
    let start = Instant::now();
    let mut saw_300 = false;
    // Polls the kernel's state until the last step is in, with a generous bound.
    loop {
        let qdisc = link.qdisc(Side::Kiosk);
        saw_300 |= qdisc.contains("rate 300Kbit");
        if saw_300 && qdisc.contains("rate 2Mbit") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the schedule did not run: {qdisc}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The outage came and went: the link carries traffic again.
    let got = burst(&link, 5006, 100, 200, 20, 1.0, Duration::from_millis(300));
    assert_eq!(got.count, 100, "the link did not come back after the scheduled outage");
}

#[test]
fn issue_12_dropping_a_link_removes_everything_also_after_a_panic() {
    let names = |link: &Link| [link.ns(Side::Kiosk).to_owned(), link.ns(Side::Hospital).to_owned()];
    let listed = || {
        let out = std::process::Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let link = Link::new(Profile::prison());
    let ns = names(&link);
    assert!(listed().contains(&ns[0]) && listed().contains(&ns[1]), "{}", listed());
    // A child the test forgot: the drop must not leave the namespace alive because of it.
    let mut leaked = link.command(Side::Hospital, "sleep").arg("60").spawn().expect("sleep");
    drop(link);
    let listing = listed();
    assert!(!listing.contains(&ns[0]) && !listing.contains(&ns[1]), "left behind: {listing}");
    let start = Instant::now();
    while leaked.try_wait().expect("status").is_none() {
        assert!(start.elapsed() < Duration::from_secs(5), "the leaked child still runs");
        std::thread::sleep(Duration::from_millis(20));
    }

    let (tx, rx) = std::sync::mpsc::channel();
    let panicked = std::thread::spawn(move || {
        let link = Link::new(Profile::poor());
        tx.send(names(&link)).expect("send the names");
        panic!("a test fails while its link is up");
    })
    .join();
    assert!(panicked.is_err(), "the thread should have panicked");
    let ns = rx.recv().expect("the names");
    let listing = listed();
    assert!(!listing.contains(&ns[0]) && !listing.contains(&ns[1]), "left behind after a panic: {listing}");
}
