//! Shaped network links for the end-to-end tests: two network namespaces joined by a veth pair that
//! plays the prison's link, with rate (tc tbf), loss and outages (nftables) and delay and jitter (our
//! own UDP relay, `udp-delay-relay`), all removed again when the [`Link`] is dropped.
//!
//! # Layout
//! ```text
//!  namespace sclink-<pid>-<n>-kiosk          namespace sclink-<pid>-<n>-hosp
//!  kiosk engine / window                      care server, coturn, Chromium consultant
//!  veth-kiosk 10.88.<n>.1/24  <==== veth ====>  veth-hosp 10.88.<n>.2/24
//!                                              udp-delay-relay 10.88.<n>.2:<port> -> coturn
//! ```
//! - Each namespace has `lo` up and no route beyond the /24, so nothing a test starts there can reach
//!   any other address. IPv6 is off on the veth ends, so the only addresses on the link are the two
//!   private ones above (a browser would otherwise offer link-local IPv6 candidates too).
//! - Processes join a side by being started through `ip netns exec` ([`Link::command`]): the
//!   workspace forbids `unsafe`, so the test process itself never calls `setns`.
//! - The addresses live only inside the pair's namespaces, so two links (even in two processes)
//!   may share an `<n>`; it is unique per process only to tell links apart in logs.
//!
//! # Shaping
//! - Rate: a `tbf` qdisc on BOTH veth ends (each shapes what its side sends), `latency 300ms`, so a
//!   sender faster than the rate sees a 300 ms queue and then tail drop, as on a real access link.
//!   [`Link::set_rate`] changes it at run time (`tc qdisc change`).
//! - Loss and outages: an nftables table `inet sclink` in each namespace drops in a prerouting chain
//!   (priority -300) what ARRIVES on that side's veth. Dropping on the receiving side is real loss: a
//!   drop in an output or postrouting chain returns EPERM to the sender, which notices. Every rule
//!   matches `iifname` of the veth, so traffic that stays inside a namespace (coturn <-> Chromium on
//!   the hospital side) is never touched. Loss is UDP only (the media; the figures in the design notes
//!   were measured that way); an outage drops everything arriving on the veth, UDP and TCP alike,
//!   because TURN over UDP and the signalling WebSocket over TCP both cross the link. ARP is not in the
//!   inet family, so neighbours stay resolved and the link comes back at once after an outage.
//!   The drops are counted in named counters ([`Link::drops`]).
//! - Delay and jitter: this kernel has no netem, so they come from `udp-delay-relay`, which only
//!   delays what is sent THROUGH it (see below); TCP (signalling) is not delayed.
//!
//! # Where the delay relay sits
//! The kiosk's media crosses the link as TURN over UDP to coturn. [`Link::delay_relay`] starts the
//! relay in the hospital namespace on the hospital address and another port, forwarding to coturn's
//! UDP port; the TURN URL handed to the kiosk ([`DelayRelay::turn_url`]) names the relay. Each client
//! of the relay gets its own upstream socket, so coturn still sees one 5-tuple per client; it sees
//! the relay's address, though, so a server-reflexive candidate names the relay (relay-only ICE
//! ignores those). The path kiosk -> veth (rate, loss) -> relay (delay) -> coturn is the prison link;
//! the leg coturn <-> Chromium, inside the hospital namespace, is the hospital's LAN and stays
//! unshaped. To compare Chromium with the kiosk on the prisoner's side, run both in the kiosk
//! namespace through the same relay (same delay line, same jitter seed).
//!
//! # Example
//! ```no_run
//! use sc_e2e::link::{Link, Profile, Side};
//! use std::net::SocketAddr;
//!
//! let link = Link::new(Profile::prison());
//! let hospital = link.addr(Side::Hospital);
//! // coturn on the hospital side, listening and relaying on the hospital address.
//! let mut turn = link
//!     .command(Side::Hospital, "turnserver")
//!     .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--use-auth-secret", "--static-auth-secret=s"])
//!     .arg(format!("--listening-ip={hospital}"))
//!     .arg(format!("--relay-ip={hospital}"))
//!     .arg("--listening-port=3478")
//!     .spawn()
//!     .expect("coturn");
//! // The kiosk side reaches coturn through the delay relay (80 ms + up to 20 ms each way).
//! let relay = link.delay_relay(SocketAddr::from((hospital, 3478)));
//! println!("the kiosk's TURN URL: {}", relay.turn_url());
//! let mut client = link
//!     .command(Side::Kiosk, "turnutils_uclient")
//!     .args(["-W", "s", "-p", &relay.addr().port().to_string(), &relay.addr().ip().to_string()])
//!     .spawn()
//!     .expect("TURN client");
//! link.start_schedule(); // the profile's outages and rate steps, timed from now
//! link.outage(true); // or by hand
//! # let _ = (client.kill(), turn.kill());
//! ```
//! Drop the children before the link. Whatever still runs in a namespace when the link is dropped
//! is killed, so that the namespaces really go.

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The first two octets of every link's addresses (a private /16, used only inside the namespaces).
const NET: [u8; 2] = [10, 88];
/// Names of our namespaces start with this; the stale sweep touches nothing else.
const NS_PREFIX: &str = "sclink-";
/// How long a shaped queue may get before tbf drops (the design notes' figure).
const TBF_LATENCY: &str = "300ms";
/// The nftables table in each namespace.
const TABLE: &str = "sclink";
/// How long [`Profile::outage`] cuts the link.
pub const OUTAGE: Duration = Duration::from_secs(10);
/// The jitter seed [`Link::delay_relay`] uses, so runs see the same jitter sequence.
pub const RELAY_SEED: u64 = 0x5EC0_2E11;

/// One end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The prison laptop's end.
    Kiosk,
    /// The hospital's end: care server, coturn, the consultant's browser.
    Hospital,
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::Kiosk => Side::Hospital,
            Side::Hospital => Side::Kiosk,
        }
    }

    fn index(self) -> usize {
        match self {
            Side::Kiosk => 0,
            Side::Hospital => 1,
        }
    }

    fn host(self) -> u8 {
        match self {
            Side::Kiosk => 1,
            Side::Hospital => 2,
        }
    }

    /// The veth end in this side's namespace (names are per namespace, so every link uses the same).
    pub fn veth(self) -> &'static str {
        match self {
            Side::Kiosk => "veth-kiosk",
            Side::Hospital => "veth-hosp",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Side::Kiosk => "kiosk",
            Side::Hospital => "hosp",
        }
    }
}

/// A change to the link at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The rate in kbit/s both ways (`None`: unshaped).
    Rate(Option<u32>),
    /// Total loss both ways (on) or back to the profile's loss (off).
    Outage(bool),
    /// UDP loss in percent, both ways.
    Loss(u8),
}

/// A [`Change`] at a time from [`Link::start_schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When, from the start of the schedule.
    pub at: Duration,
    /// What.
    pub change: Change,
}

/// What a link does to traffic. The delay and jitter apply to what goes through [`Link::delay_relay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// A short name for logs and figures.
    pub name: &'static str,
    /// The rate in kbit/s, the same both ways; `None`: unshaped.
    pub rate_kbit: Option<u32>,
    /// One-way delay in ms (the floor: jitter only adds).
    pub delay_ms: u32,
    /// Extra one-way delay, uniform in 0..=jitter ms, order kept (see `udp-delay-relay`).
    pub jitter_ms: u32,
    /// UDP loss kiosk -> hospital, percent.
    pub loss_up_pct: u8,
    /// UDP loss hospital -> kiosk, percent.
    pub loss_down_pct: u8,
    /// Outages and rate steps, timed from [`Link::start_schedule`]; empty for a steady link.
    pub schedule: Vec<Event>,
}

impl Profile {
    /// No shaping at all: the baseline, and a clean start for a test that sets things by hand.
    pub fn unshaped() -> Self {
        Profile {
            name: "unshaped",
            rate_kbit: None,
            delay_ms: 0,
            jitter_ms: 0,
            loss_up_pct: 0,
            loss_down_pct: 0,
            schedule: Vec::new(),
        }
    }

    /// A good hospital-grade link: 10 Mbit/s, 20 ms. (The jitter figures throughout are ours: about a
    /// quarter of the delay.)
    pub fn good() -> Self {
        Profile { name: "good", rate_kbit: Some(10_000), delay_ms: 20, jitter_ms: 5, ..Self::unshaped() }
    }

    /// A typical prison link: 512 kbit/s, 80 ms, 3 % loss each way.
    pub fn prison() -> Self {
        Profile {
            name: "prison",
            rate_kbit: Some(512),
            delay_ms: 80,
            jitter_ms: 20,
            loss_up_pct: 3,
            loss_down_pct: 3,
            schedule: Vec::new(),
        }
    }

    /// A poor prison link: 256 kbit/s, 150 ms, 5 % loss each way.
    pub fn poor() -> Self {
        Profile {
            name: "poor",
            rate_kbit: Some(256),
            delay_ms: 150,
            jitter_ms: 40,
            loss_up_pct: 5,
            loss_down_pct: 5,
            schedule: Vec::new(),
        }
    }

    /// A link fit for audio only: 64 kbit/s, 200 ms, 5 % loss each way.
    pub fn audio_only() -> Self {
        Profile {
            name: "audio-only",
            rate_kbit: Some(64),
            delay_ms: 200,
            jitter_ms: 50,
            loss_up_pct: 5,
            loss_down_pct: 5,
            schedule: Vec::new(),
        }
    }

    /// A good link that loses everything for [`OUTAGE`] from `at`.
    pub fn outage(at: Duration) -> Self {
        Profile {
            name: "outage",
            schedule: vec![
                Event { at, change: Change::Outage(true) },
                Event { at: at + OUTAGE, change: Change::Outage(false) },
            ],
            ..Self::good()
        }
    }

    /// 2 Mbit/s, down to 300 kbit/s at `down_at`, back to 2 Mbit/s at `up_at` (20 ms, no loss).
    pub fn step(down_at: Duration, up_at: Duration) -> Self {
        Profile {
            name: "step",
            rate_kbit: Some(2_000),
            schedule: vec![
                Event { at: down_at, change: Change::Rate(Some(300)) },
                Event { at: up_at, change: Change::Rate(Some(2_000)) },
            ],
            ..Self::good()
        }
    }
}

/// Packets the nftables rules dropped on arrival at one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// By the random-loss rule.
    pub loss: u64,
    /// By the outage rule.
    pub outage: u64,
}

/// A qdisc's counters, from the first "Sent <bytes> bytes <packets> pkt (dropped <n>" line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QdiscCounts {
    /// Bytes sent on.
    pub bytes: u64,
    /// Packets sent on.
    pub packets: u64,
    /// Packets dropped (the queue was full).
    pub dropped: u64,
    /// Bytes waiting in the queue when read (a level, not a count: kept as read by `since`).
    pub backlog: u64,
}

impl QdiscCounts {
    fn parse(text: &str) -> Self {
        let words: Vec<&str> = text.split_whitespace().collect();
        let after = |w: &str| {
            words
                .iter()
                .position(|x| x.trim_start_matches('(') == w)
                .and_then(|i| words.get(i + 1))
                .and_then(|v| v.trim_end_matches([',', ')']).parse().ok())
                .unwrap_or(0)
        };
        // tc prints the backlog with a unit: "0b", "3028b", "15Kb", "1.2Mb".
        let backlog = words.iter().position(|x| *x == "backlog").and_then(|i| words.get(i + 1)).and_then(|v| {
            let v = v.strip_suffix('b')?;
            let (num, scale) = match v.strip_suffix('K') {
                Some(n) => (n, 1024.0),
                None => v.strip_suffix('M').map_or((v, 1.0), |n| (n, 1024.0 * 1024.0)),
            };
            num.parse::<f64>().ok().map(|n| (n * scale) as u64)
        });
        QdiscCounts {
            bytes: after("Sent"),
            packets: after("bytes"),
            dropped: after("dropped"),
            backlog: backlog.unwrap_or(0),
        }
    }

    fn since(self, earlier: Self) -> Self {
        QdiscCounts {
            bytes: self.bytes.saturating_sub(earlier.bytes),
            packets: self.packets.saturating_sub(earlier.packets),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            backlog: self.backlog,
        }
    }
}

/// Both directions of the link at one moment, for traces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// The kiosk's side's tbf (what the prison sends).
    pub up: QdiscCounts,
    /// The hospital's side's tbf.
    pub down: QdiscCounts,
    /// Dropped by the loss rule on arrival at the hospital (the uplink's random loss).
    pub lost_up: u64,
    /// Dropped by the loss rule on arrival at the kiosk.
    pub lost_down: u64,
}

impl LinkCounts {
    /// What happened between `earlier` and this.
    pub fn since(self, earlier: Self) -> Self {
        LinkCounts {
            up: self.up.since(earlier.up),
            down: self.down.since(earlier.down),
            lost_up: self.lost_up.saturating_sub(earlier.lost_up),
            lost_down: self.lost_down.saturating_sub(earlier.lost_down),
        }
    }
}

/// What is applied now.
#[derive(Debug, Clone, Copy)]
struct State {
    rate_kbit: Option<u32>,
    /// Loss of what arrives at [kiosk, hospital].
    loss_into: [u8; 2],
    outage: bool,
    /// Only UDP is cut (the media path fails, the signalling's TCP still works).
    udp_outage: bool,
}

/// The namespaces and what is applied in them; shared with the schedule thread.
#[derive(Debug)]
struct Control {
    n: u8,
    ns: [String; 2],
    state: Mutex<State>,
}

/// A running schedule: dropping the sender stops it.
#[derive(Debug)]
struct ScheduleThread {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

/// Two network namespaces joined by a shaped veth pair; removed on drop (also when a test panics).
#[derive(Debug)]
pub struct Link {
    ctl: Arc<Control>,
    profile: Profile,
    schedule: Mutex<Option<ScheduleThread>>,
}

impl Link {
    /// Creates the namespaces, the veth pair and the profile's rate and loss. Needs root (or
    /// CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2 and nftables; panics with the reason otherwise.
    pub fn new(profile: Profile) -> Self {
        static SWEEP: Once = Once::new();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        SWEEP.call_once(sweep_stale);
        let seq = NEXT.fetch_add(1, Ordering::Relaxed);
        // Wraps after 256 links in one process: harmless, the addresses are namespace-local.
        let n = u8::try_from(seq % 256).unwrap_or(0);
        let pid = std::process::id();
        let ns = [Side::Kiosk, Side::Hospital].map(|s| format!("{NS_PREFIX}{pid}-{seq}-{}", s.suffix()));
        let state = State {
            rate_kbit: None,
            loss_into: [profile.loss_down_pct, profile.loss_up_pct],
            outage: false,
            udp_outage: false,
        };
        // Built before anything exists, so that a failure halfway is cleaned up by Drop.
        let link = Link {
            ctl: Arc::new(Control { n, ns, state: Mutex::new(state) }),
            profile: profile.clone(),
            schedule: Mutex::new(None),
        };
        if let Err(e) = link.ctl.setup(profile.rate_kbit) {
            panic!(
                "shaped link setup failed: {e}\n(needs root, iproute2 and nftables: scripts/lib.sh PKGS_RUNTIME; \
                 and a kernel with veth, tbf and nf_tables)"
            );
        }
        link
    }

    /// The profile the link started with.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The namespace of `side`.
    pub fn ns(&self, side: Side) -> &str {
        &self.ctl.ns[side.index()]
    }

    /// The address of `side` on the link.
    pub fn addr(&self, side: Side) -> Ipv4Addr {
        self.ctl.addr(side)
    }

    /// `program` to run in `side`'s namespace (`ip netns exec <ns> program`); add arguments, the
    /// environment and stdio as usual. `ip netns exec` execs the program, so the child's pid is the
    /// program's own and `Child::kill` reaches it.
    pub fn command(&self, side: Side, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(side)]).arg(program);
        cmd
    }

    /// The rate both ways, in kbit/s (`None`: unshaped), from now on.
    pub fn set_rate(&self, kbit: Option<u32>) {
        self.ctl.set_rate(kbit).unwrap_or_else(|e| panic!("set rate {kbit:?}: {e}"));
    }

    /// UDP loss both ways, in percent (0..=100), from now on.
    pub fn set_loss(&self, percent: u8) {
        for side in [Side::Kiosk, Side::Hospital] {
            self.set_loss_into(side, percent);
        }
    }

    /// UDP loss of what arrives at `side`, in percent (0..=100), from now on.
    pub fn set_loss_into(&self, side: Side, percent: u8) {
        self.ctl.set_loss_into(side, percent).unwrap_or_else(|e| panic!("set loss {percent}% into {side:?}: {e}"));
    }

    /// Cuts the link (everything arriving on either veth is dropped) or restores it.
    pub fn outage(&self, on: bool) {
        self.ctl.set_outage(on).unwrap_or_else(|e| panic!("outage {on}: {e}"));
    }

    /// Cuts UDP only (the relay path fails, TCP such as the signalling still works), or restores it.
    pub fn udp_outage(&self, on: bool) {
        self.ctl.set_udp_outage(on).unwrap_or_else(|e| panic!("UDP outage {on}: {e}"));
    }

    /// What the nftables rules have dropped on arrival at `side` so far.
    pub fn drops(&self, side: Side) -> Drops {
        self.ctl.drops(side).unwrap_or_else(|e| panic!("read drop counters: {e}"))
    }

    /// `tc qdisc show` of `side`'s veth, for logs and checks.
    pub fn qdisc(&self, side: Side) -> String {
        run(Command::new("tc").args(["-n", self.ns(side), "qdisc", "show", "dev", side.veth()]))
            .unwrap_or_else(|e| panic!("tc qdisc show: {e}"))
    }

    /// What `side`'s shaping qdisc has sent and dropped so far (`tc -s`), for traces.
    pub fn qdisc_counts(&self, side: Side) -> QdiscCounts {
        let out = run(Command::new("tc").args(["-s", "-n", self.ns(side), "qdisc", "show", "dev", side.veth()]))
            .unwrap_or_else(|e| panic!("tc -s qdisc show: {e}"));
        QdiscCounts::parse(&out)
    }

    /// Both directions' shaping and random loss so far, for traces.
    pub fn counts(&self) -> LinkCounts {
        LinkCounts {
            up: self.qdisc_counts(Side::Kiosk),
            down: self.qdisc_counts(Side::Hospital),
            lost_up: self.drops(Side::Hospital).loss,
            lost_down: self.drops(Side::Kiosk).loss,
        }
    }

    /// Applies the profile's schedule, timed from now, on a thread of its own (a second call starts
    /// it again from now). It stops when the link is dropped.
    pub fn start_schedule(&self) {
        let mut events = self.profile.schedule.clone();
        events.sort_by_key(|e| e.at);
        let (stop, stopped) = mpsc::channel::<()>();
        let ctl = Arc::clone(&self.ctl);
        let start = Instant::now();
        let handle = std::thread::spawn(move || {
            for event in events {
                let wait = (start + event.at).saturating_duration_since(Instant::now());
                // A message or a hang-up both mean stop; only the timeout means "time for the event".
                if stopped.recv_timeout(wait) != Err(mpsc::RecvTimeoutError::Timeout) {
                    return;
                }
                if let Err(e) = ctl.apply(event.change) {
                    eprintln!("shaped link {}: schedule {event:?} failed: {e}", ctl.n);
                }
            }
        });
        let previous = self.schedule.lock().map(|mut s| s.replace(ScheduleThread { stop, handle }));
        if let Ok(Some(previous)) = previous {
            previous.finish();
        }
    }

    /// Starts `udp-delay-relay` on the hospital address (a free port) forwarding to `upstream` (usually
    /// coturn's UDP port on the hospital side), with the profile's delay and jitter and [`RELAY_SEED`].
    pub fn delay_relay(&self, upstream: SocketAddr) -> DelayRelay {
        let listen = SocketAddr::from((self.addr(Side::Hospital), 0));
        self.delay_relay_with(
            Side::Hospital,
            listen,
            upstream,
            self.profile.delay_ms,
            self.profile.jitter_ms,
            RELAY_SEED,
        )
    }

    /// `udp-delay-relay` in `side`'s namespace, listening on `listen` (port 0: a free one), forwarding
    /// to `upstream` with `delay_ms` + uniform(0..=`jitter_ms`) each way.
    pub fn delay_relay_with(
        &self,
        side: Side,
        listen: SocketAddr,
        upstream: SocketAddr,
        delay_ms: u32,
        jitter_ms: u32,
        seed: u64,
    ) -> DelayRelay {
        let mut child = self
            .command(side, crate::bin("udp-delay-relay"))
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--forward")
            .arg(upstream.to_string())
            .arg("--delay-ms")
            .arg(delay_ms.to_string())
            .arg("--jitter-ms")
            .arg(jitter_ms.to_string())
            .arg("--seed")
            .arg(seed.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start udp-delay-relay");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .and_then(|line| line.trim().strip_prefix("listening ").and_then(|a| a.parse().ok()));
        match addr {
            Some(addr) => DelayRelay { child, addr },
            None => {
                let _ = child.kill();
                let status = child.wait();
                panic!("udp-delay-relay did not start on {listen} (exit: {status:?}); its stderr is above");
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Ok(Some(schedule)) = self.schedule.get_mut().map(Option::take) {
            schedule.finish();
        }
        self.ctl.teardown();
    }
}

impl ScheduleThread {
    fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

impl Control {
    fn ns(&self, side: Side) -> &str {
        &self.ns[side.index()]
    }

    fn addr(&self, side: Side) -> Ipv4Addr {
        Ipv4Addr::new(NET[0], NET[1], self.n, side.host())
    }

    fn setup(&self, rate: Option<u32>) -> Result<(), String> {
        let [k, h] = [Side::Kiosk, Side::Hospital];
        for side in [k, h] {
            run(Command::new("ip").args(["netns", "add", self.ns(side)]))?;
        }
        // Created directly inside the two namespaces, so the fixed veth names never meet.
        run(Command::new("ip")
            .args(["link", "add", k.veth(), "netns", self.ns(k), "type", "veth", "peer", "name"])
            .args([h.veth(), "netns", self.ns(h)]))?;
        for side in [k, h] {
            let ns = self.ns(side);
            // Before the link is up, so no IPv6 link-local address ever appears on it.
            let ipv6 = format!("net.ipv6.conf.{}.disable_ipv6=1", side.veth());
            run(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-q", "-w", &ipv6]))?;
            let cidr = format!("{}/24", self.addr(side));
            run(Command::new("ip").args(["-n", ns, "addr", "add", &cidr, "dev", side.veth()]))?;
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]))?;
            run(Command::new("ip").args(["-n", ns, "link", "set", side.veth(), "up"]))?;
            let table = format!(
                "table inet {TABLE} {{\n  counter loss {{}}\n  counter outage {{}}\n  chain pre {{\n    \
                 type filter hook prerouting priority -300; policy accept;\n  }}\n}}\n"
            );
            nft(ns, &table)?;
        }
        self.set_rate(rate)?;
        let state = *self.state.lock().map_err(|_| "state lock poisoned")?;
        for side in [k, h] {
            self.write_rules(side, &state)?;
        }
        Ok(())
    }

    fn apply(&self, change: Change) -> Result<(), String> {
        match change {
            Change::Rate(kbit) => self.set_rate(kbit),
            Change::Outage(on) => self.set_outage(on),
            Change::Loss(pct) => {
                self.set_loss_into(Side::Kiosk, pct)?;
                self.set_loss_into(Side::Hospital, pct)
            }
        }
    }

    fn set_rate(&self, kbit: Option<u32>) -> Result<(), String> {
        let mut state = self.state.lock().map_err(|_| "state lock poisoned")?;
        for side in [Side::Kiosk, Side::Hospital] {
            let mut cmd = Command::new("tc");
            cmd.args(["-n", self.ns(side), "qdisc"]);
            match (state.rate_kbit, kbit) {
                (None, None) => continue,
                (Some(_), None) => cmd.args(["del", "dev", side.veth(), "root"]),
                (None, Some(_)) => cmd.args(["add", "dev", side.veth(), "root"]),
                (Some(_), Some(_)) => cmd.args(["change", "dev", side.veth(), "root"]),
            };
            if let Some(rate) = kbit {
                if rate == 0 {
                    return Err("a rate of 0 kbit/s: use an outage".into());
                }
                // At least 8 KiB (the design notes' figure, a few full packets), or 10 ms at the rate,
                // which tbf needs at high rates to reach the rate with the kernel's timer granularity.
                let burst = (u64::from(rate) * 1000 / 8 / 100).max(8 * 1024);
                cmd.args(["tbf", "rate", &format!("{rate}kbit"), "burst", &burst.to_string(), "latency", TBF_LATENCY]);
            }
            run(&mut cmd)?;
        }
        state.rate_kbit = kbit;
        Ok(())
    }

    fn set_loss_into(&self, side: Side, percent: u8) -> Result<(), String> {
        if percent > 100 {
            return Err(format!("loss of {percent}%"));
        }
        let mut state = self.state.lock().map_err(|_| "state lock poisoned")?;
        state.loss_into[side.index()] = percent;
        self.write_rules(side, &state)
    }

    fn set_outage(&self, on: bool) -> Result<(), String> {
        let mut state = self.state.lock().map_err(|_| "state lock poisoned")?;
        state.outage = on;
        for side in [Side::Kiosk, Side::Hospital] {
            self.write_rules(side, &state)?;
        }
        Ok(())
    }

    fn set_udp_outage(&self, on: bool) -> Result<(), String> {
        let mut state = self.state.lock().map_err(|_| "state lock poisoned")?;
        state.udp_outage = on;
        for side in [Side::Kiosk, Side::Hospital] {
            self.write_rules(side, &state)?;
        }
        Ok(())
    }

    /// Rewrites `side`'s rules from `state` in one nft transaction (the named counters keep counting).
    fn write_rules(&self, side: Side, state: &State) -> Result<(), String> {
        let veth = side.veth();
        let mut script = format!("flush chain inet {TABLE} pre\n");
        if state.outage {
            script.push_str(&format!("add rule inet {TABLE} pre iifname \"{veth}\" counter name \"outage\" drop\n"));
        } else if state.udp_outage {
            script.push_str(&format!(
                "add rule inet {TABLE} pre iifname \"{veth}\" meta l4proto udp counter name \"outage\" drop\n"
            ));
        }
        let loss = state.loss_into[side.index()];
        if loss > 0 {
            script.push_str(&format!(
                "add rule inet {TABLE} pre iifname \"{veth}\" meta l4proto udp numgen random mod 100 < {loss} \
                 counter name \"loss\" drop\n"
            ));
        }
        nft(self.ns(side), &script)
    }

    fn drops(&self, side: Side) -> Result<Drops, String> {
        let count = |name: &str| -> Result<u64, String> {
            let out = run(Command::new("ip")
                .args(["netns", "exec", self.ns(side), "nft", "list", "counter", "inet"])
                .args([TABLE, name]))?;
            // "counter loss { packets 12 bytes 3456 }" over several lines.
            let mut words = out.split_whitespace();
            words
                .by_ref()
                .find(|w| *w == "packets")
                .and(words.next())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("no packet count in: {out}"))
        };
        Ok(Drops { loss: count("loss")?, outage: count("outage")? })
    }

    /// Kills what still runs in the namespaces (a leaked child would keep one alive), then deletes
    /// them; the veth pair goes with them. Errors are ignored: this also cleans up a failed setup.
    fn teardown(&self) {
        for ns in &self.ns {
            kill_inside(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// SIGKILLs every process in namespace `ns` (all of them were started by the tests through it).
fn kill_inside(ns: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).stderr(Stdio::null()).output() else { return };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            eprintln!("shaped link: killing pid {pid}, still running in {ns}");
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// Deletes namespaces left by earlier test processes that were killed before their links dropped
/// (`sclink-<pid>-...` whose pid is gone). A live pid's namespaces are left alone.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) =
            name.strip_prefix(NS_PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill_inside(&name);
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// Runs `script` through `nft -f -` in namespace `ns`.
fn nft(ns: &str, script: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft in {ns}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| format!("nft stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("nft in {ns}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft in {ns} failed ({}): {}\nscript:\n{script}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// Runs `cmd`; its stdout, or an error naming it with its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A running `udp-delay-relay`, killed when dropped.
#[derive(Debug)]
pub struct DelayRelay {
    child: Child,
    addr: SocketAddr,
}

impl DelayRelay {
    /// Where clients send (the address it bound).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A TURN URL naming the relay, for the side that should see the delay.
    pub fn turn_url(&self) -> String {
        format!("turn:{}?transport=udp", self.addr)
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::QdiscCounts;

    #[test]
    fn qdisc_counters_are_read_from_tc_s() {
        let text = "qdisc tbf 8001: root refcnt 2 rate 64Kbit burst 8Kb lat 300ms \n Sent 123456 bytes 789 pkt (dropped 42, overlimits 7 requeues 0) \n backlog 0b 0p requeues 0\n";
        assert_eq!(QdiscCounts::parse(text), QdiscCounts { bytes: 123_456, packets: 789, dropped: 42, backlog: 0 });
        let queued = text.replace("backlog 0b 0p", "backlog 15Kb 11p");
        assert_eq!(QdiscCounts::parse(&queued).backlog, 15 * 1024);
        assert_eq!(QdiscCounts::parse(&text.replace("backlog 0b", "backlog 3028b")).backlog, 3028);
        assert_eq!(QdiscCounts::parse("garbage"), QdiscCounts::default());
    }
}
