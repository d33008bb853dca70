//! Test helper: a UDP relay that adds one-way delay and jitter, both ways, between its clients and one
//! fixed upstream (coturn in the shaped-link tests, see `sc_e2e::link`). The kernel here has no netem,
//! so delay is made in user space.
//!
//! `udp-delay-relay --listen ADDR --forward ADDR [--delay-ms D] [--jitter-ms J] [--seed S]`
//!
//! - Each client (source address seen on `--listen`) gets its own upstream socket, so the upstream
//!   sees one distinct 5-tuple per client, as it would without the relay (coturn keys allocations on
//!   it). Sessions live as long as the relay.
//! - Every datagram waits D + uniform(0..=J) ms; D is a floor, so a measured delay is never below it.
//! - Order is kept within each flow (client -> upstream, upstream -> client): a datagram is never sent
//!   before the one received ahead of it. Real access links rarely reorder, and reordering would
//!   punish the receivers' jitter buffers for something a prison link does not do; the price is that
//!   closely spaced datagrams share the larger of their jitter draws.
//! - The first line on stdout is `listening <addr>` (the bound address, so `:0` may be asked for).
//! - `--seed` makes the jitter sequence repeatable, so two runs (kiosk vs Chromium) see the same one.
#![forbid(unsafe_code)]

use std::collections::{BinaryHeap, HashMap};
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Beyond this many datagrams waiting, new ones are dropped: a stuck sender must not eat the memory.
const MAX_QUEUED: usize = 100_000;
/// Beyond this many clients, new ones are ignored (a test has a handful).
const MAX_SESSIONS: usize = 256;
/// Big enough for any UDP payload.
const BUF: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Options {
    listen: SocketAddr,
    forward: SocketAddr,
    delay: Duration,
    jitter_ms: u64,
    seed: u64,
}

fn usage(why: &str) -> ! {
    eprintln!("udp-delay-relay: {why}");
    eprintln!("usage: udp-delay-relay --listen ADDR --forward ADDR [--delay-ms D] [--jitter-ms J] [--seed S]");
    std::process::exit(2);
}

fn parsed<T: std::str::FromStr>(flag: &str, value: &str) -> T
where
    T::Err: std::fmt::Display,
{
    value.parse().unwrap_or_else(|e| usage(&format!("bad value for {flag}: {value}: {e}")))
}

fn parse_args() -> Options {
    let mut listen = None;
    let mut forward = None;
    let mut delay_ms = 0u64;
    let mut jitter_ms = 0u64;
    let mut seed = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else { usage(&format!("{flag} needs a value")) };
        match flag.as_str() {
            "--listen" => listen = Some(parsed(&flag, &value)),
            "--forward" => forward = Some(parsed(&flag, &value)),
            "--delay-ms" => delay_ms = parsed(&flag, &value),
            "--jitter-ms" => jitter_ms = parsed(&flag, &value),
            "--seed" => seed = Some(parsed(&flag, &value)),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let (Some(listen), Some(forward)) = (listen, forward) else { usage("--listen and --forward are required") };
    let seed = seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        // Truncation is fine: any 64 bits of the clock make a seed.
        (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
    });
    Options { listen, forward, delay: Duration::from_millis(delay_ms), jitter_ms, seed }
}

/// xorshift64*: enough randomness for jitter, and no dependency (the test kit's lock file stays).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in 0..=max (the modulo bias is irrelevant at millisecond spans).
    fn upto(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            self.next() % (max + 1)
        }
    }
}

/// One direction of one session: keeps its own order and jitter draws.
#[derive(Debug)]
struct Flow {
    rng: Rng,
    last_due: Instant,
}

impl Flow {
    fn new(seed: u64) -> Self {
        Flow { rng: Rng::new(seed), last_due: Instant::now() }
    }

    /// When a datagram received now leaves: D + jitter, but never before its predecessor.
    fn due(&mut self, opts: &Options) -> Instant {
        let wait = opts.delay + Duration::from_millis(self.rng.upto(opts.jitter_ms));
        let due = (Instant::now() + wait).max(self.last_due);
        self.last_due = due;
        due
    }
}

/// A datagram waiting for its time.
#[derive(Debug)]
struct Pending {
    due: Instant,
    /// Arrival order: ties on `due` leave in the order they came.
    seq: u64,
    socket: Arc<UdpSocket>,
    /// `None` for a connected upstream socket.
    to: Option<SocketAddr>,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap and the earliest must come out first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The datagrams in flight, shared by the readers and the one sending thread.
#[derive(Debug, Default)]
struct DelayLine {
    queue: Mutex<(BinaryHeap<Pending>, u64)>,
    wake: Condvar,
}

impl DelayLine {
    fn push(&self, due: Instant, socket: &Arc<UdpSocket>, to: Option<SocketAddr>, data: &[u8]) {
        let Ok(mut guard) = self.queue.lock() else { return };
        let (heap, seq) = &mut *guard;
        if heap.len() >= MAX_QUEUED {
            return;
        }
        *seq += 1;
        heap.push(Pending { due, seq: *seq, socket: Arc::clone(socket), to, data: data.to_vec() });
        drop(guard);
        self.wake.notify_one();
    }

    /// Sends each datagram at its time, forever.
    fn run(&self) {
        let Ok(mut guard) = self.queue.lock() else { return };
        loop {
            let now = Instant::now();
            match guard.0.peek().map(|p| p.due) {
                None => {
                    let Ok(g) = self.wake.wait(guard) else { return };
                    guard = g;
                }
                Some(due) if due > now => {
                    let Ok((g, _)) = self.wake.wait_timeout(guard, due - now) else { return };
                    guard = g;
                }
                Some(_) => {
                    let Some(p) = guard.0.pop() else { continue };
                    drop(guard);
                    // A failed send is loss, as on a real link (e.g. the upstream is not up yet).
                    let _ = match p.to {
                        Some(to) => p.socket.send_to(&p.data, to),
                        None => p.socket.send(&p.data),
                    };
                    let Ok(g) = self.queue.lock() else { return };
                    guard = g;
                }
            }
        }
    }
}

fn main() {
    let opts = parse_args();
    let listen = match UdpSocket::bind(opts.listen) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("udp-delay-relay: bind {}: {e}", opts.listen);
            std::process::exit(1);
        }
    };
    let local = listen.local_addr().unwrap_or(opts.listen);
    println!("listening {local}");
    // The harness waits for that line; without a flush it would sit in the pipe's buffer.
    let _ = std::io::stdout().flush();

    let line = Arc::new(DelayLine::default());
    {
        let line = Arc::clone(&line);
        std::thread::spawn(move || line.run());
    }

    // Client address -> (its upstream socket, its client -> upstream flow).
    let mut sessions: HashMap<SocketAddr, (Arc<UdpSocket>, Flow)> = HashMap::new();
    let mut seeds = Rng::new(opts.seed);
    let mut buf = vec![0u8; BUF];
    loop {
        let (n, client) = match listen.recv_from(&mut buf) {
            Ok(x) => x,
            // ICMP port unreachable from an earlier send surfaces here on Linux; it is not fatal.
            Err(_) => continue,
        };
        if !sessions.contains_key(&client) {
            if sessions.len() >= MAX_SESSIONS {
                continue;
            }
            let Some(upstream) = open_upstream(&opts) else { continue };
            let down = Flow::new(seeds.next());
            spawn_downstream(Arc::clone(&upstream), Arc::clone(&listen), client, down, Arc::clone(&line), opts);
            sessions.insert(client, (upstream, Flow::new(seeds.next())));
        }
        let Some((upstream, flow)) = sessions.get_mut(&client) else { continue };
        let due = flow.due(&opts);
        line.push(due, upstream, None, &buf[..n]);
    }
}

/// A socket connected to the upstream, one per client.
fn open_upstream(opts: &Options) -> Option<Arc<UdpSocket>> {
    let any: SocketAddr =
        if opts.forward.is_ipv4() { SocketAddr::from(([0, 0, 0, 0], 0)) } else { SocketAddr::from(([0u16; 8], 0)) };
    let socket = UdpSocket::bind(any).and_then(|s| s.connect(opts.forward).map(|()| s));
    match socket {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            eprintln!("udp-delay-relay: upstream socket to {}: {e}", opts.forward);
            None
        }
    }
}

/// Reads what the upstream sends this client and queues it back towards the client.
fn spawn_downstream(
    upstream: Arc<UdpSocket>,
    listen: Arc<UdpSocket>,
    client: SocketAddr,
    mut flow: Flow,
    line: Arc<DelayLine>,
    opts: Options,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; BUF];
        loop {
            match upstream.recv(&mut buf) {
                Ok(n) => {
                    let due = flow.due(&opts);
                    line.push(due, &listen, Some(client), &buf[..n]);
                }
                // ECONNREFUSED from a connected socket while the upstream is down: keep listening.
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    });
}
