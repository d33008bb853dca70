//! Load on the care server (issue #13), on loopback, bounded in count and time: laptops' signalling
//! connections held open with the server's heartbeats, and activations (sequential, one laptop)
//! with the server idle and then beside an anonymous sign-in flood from another address.

use crate::{ms, percentile};
use futures_util::StreamExt as _;
use sc_core::activate::Credentials;
use sc_core::keystore::Keystore;
use sc_core::{Kiosk, KioskView};
use sc_e2e::{CareServer, PASSWORD};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

/// How many laptops' signalling connections (the goal on 2 cores).
const CONNECTIONS: usize = 2000;
/// How long they are held: past one server heartbeat (every 15 s).
const HOLD: Duration = Duration::from_secs(20);
/// Activations measured on their own and beside the flood.
const ACTIVATIONS: usize = 60;
/// Tasks sending anonymous sign-ins.
const FLOODERS: usize = 16;
/// How long the flood runs before the activations beside it are measured.
const FLOOD_BURST_SPENT: Duration = Duration::from_secs(2);

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Opens `CONNECTIONS` signalling WebSockets with a kiosk session each (made in the database: the
/// figure is the server's, not Argon2's), spread over `server` and `others` (instances on its
/// database) as a load balancer would, holds them past a heartbeat, and reports under `label`.
async fn connections(label: &str, server: &CareServer, others: &[&sc_e2e::Instance]) {
    server.add_nurse("nurse.load", "Load Nurse", "HMP Testshire");
    let device = sc_proto::DeviceId::from_random([0x4c; 16]);
    let tokens: Vec<[u8; 32]> = {
        let c = server.state.db();
        let prison: i64 =
            c.query_row("SELECT id FROM prisons WHERE name = 'HMP Testshire'", [], |r| r.get(0)).expect("prison");
        c.execute(
            "INSERT INTO devices (id, prison_id, public_key, hostname, exchange_secret, enrolled_at)
             VALUES (?1, ?2, ?3, 'load', ?3, 0)",
            sc_server::params![device.as_str(), prison, vec![0u8; 32]],
        )
        .expect("device");
        let staff = sc_server::db::staff_by_username(&c, "nurse.load").expect("db").expect("nurse").id;
        let now = sc_e2e::now();
        (0..CONNECTIONS)
            .map(|i| {
                let mut t = [0u8; 32];
                t[..8].copy_from_slice(&(i as u64).to_le_bytes());
                t[8..16].copy_from_slice(&now.to_le_bytes());
                sc_server::db::insert_kiosk_session(&c, &t, &device, staff, now, now + 3600).expect("session");
                t
            })
            .collect()
    };
    let tls = Arc::new(sc_core::tls::pinned(&server.ca_der).expect("tls"));
    let urls: Vec<String> = std::iter::once(&server.url)
        .chain(others.iter().map(|o| &o.url))
        .map(|u| u.replacen("https://", "wss://", 1) + "/v1/kiosk/signal")
        .collect();
    let (pings, open) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Each connection's time from its request to the open WebSocket (TLS, session check).
    let opened = Arc::new(std::sync::Mutex::new(Vec::with_capacity(CONNECTIONS)));
    let rss_before = rss_kib();
    let t0 = Instant::now();
    let stop = Instant::now() + HOLD + Duration::from_secs(30);
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for (i, token) in tokens.into_iter().enumerate() {
        use base64::Engine as _;
        let mut request = urls[i % urls.len()].clone().into_client_request().expect("request");
        let bearer = format!("Bearer {}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token));
        request.headers_mut().insert("authorization", bearer.parse().expect("header"));
        let connector = tokio_tungstenite::Connector::Rustls(tls.clone());
        let (pings, open) = (pings.clone(), open.clone());
        let opened = opened.clone();
        tasks.push(tokio::spawn(async move {
            let asked = Instant::now();
            let Ok((mut ws, _)) =
                tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector)).await
            else {
                return false;
            };
            opened.lock().expect("not poisoned: pushes only").push(asked.elapsed());
            open.fetch_add(1, Ordering::Relaxed);
            // Reading answers the server's pings (tungstenite queues the pong).
            while let Ok(Some(msg)) = tokio::time::timeout_at(stop.into(), ws.next()).await {
                match msg {
                    Ok(tokio_tungstenite::tungstenite::Message::Ping(_)) => {
                        pings.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            true
        }));
        // Connections arrive over a few seconds, not in one burst.
        if tasks.len() % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    while (open.load(Ordering::Relaxed) as usize) < CONNECTIONS && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected = open.load(Ordering::Relaxed);
    let took = t0.elapsed();
    let mut each = std::mem::take(&mut *opened.lock().expect("not poisoned"));
    each.sort();
    let (each_p50, each_p99) = if each.is_empty() {
        ("-".to_owned(), "-".to_owned())
    } else {
        (ms(percentile(&each, 0.5)), ms(percentile(&each, 0.99)))
    };
    let rss_open = rss_kib();
    let live = server.state.sessions.live() + others.iter().map(|o| o.state.sessions.live()).sum::<usize>();
    let sweep = {
        let t = Instant::now();
        let n = server.state.sessions.sweep(&server.state.db(), sc_e2e::now()).expect("sweep");
        assert_eq!(n, 0, "every session is live");
        t.elapsed()
    };
    tokio::time::sleep(HOLD).await;
    let pinged = pings.load(Ordering::Relaxed);
    println!(
        "signalling connections, {label} (laptops' WebSockets over TLS, one process for both ends): {connected} of {CONNECTIONS} open in {} (each p50 {} p99 {}), {live} registered; held {} s: {pinged} heartbeats answered; RSS +{} MiB for both ends ({} KiB a connection); one session sweep over all of them {}",
        ms(took),
        each_p50,
        each_p99,
        HOLD.as_secs(),
        rss_open.saturating_sub(rss_before) / 1024,
        rss_open.saturating_sub(rss_before) / connected.max(1),
        ms(sweep)
    );
    for t in tasks {
        t.abort();
    }
}

/// Sequential activations of one laptop, each by its own nurse (a code is spent once): their
/// latencies, sorted.
pub(crate) async fn activate_all(kiosk: &Kiosk, nurses: &[(String, String)]) -> Vec<Duration> {
    let mut times = Vec::with_capacity(nurses.len());
    for (name, secret) in nurses {
        let creds = Credentials {
            username: name.clone(),
            password: PASSWORD.to_owned().into(),
            totp: CareServer::code(secret),
        };
        let t0 = Instant::now();
        let view = kiosk.sign_in(creds).await;
        times.push(t0.elapsed());
        assert!(matches!(view, KioskView::Unlocked { .. }), "activation as {name} failed: {view:?}");
        kiosk.lock();
    }
    times.sort();
    times
}

fn summary(times: &[Duration]) -> String {
    let total: Duration = times.iter().sum();
    let rate = times.len() as f64 / total.as_secs_f64().max(1e-9);
    format!("{rate:.1}/s, p50 {} p99 {}", ms(percentile(times, 0.5)), ms(percentile(times, 0.99)))
}

/// An enrolled laptop of HMP Testshire (its own data directory and keystore entry) and `n` new
/// nurses there (one per activation: a TOTP code can be used once).
pub(crate) struct Laptop {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) data: sc_core::record::DataDir,
    pub(crate) keystore: Keystore,
    pub(crate) kiosk: Kiosk,
    pub(crate) nurses: Vec<(String, String)>,
}

pub(crate) async fn laptop_with_nurses(server: &CareServer, n: usize, display: &str) -> Laptop {
    laptop_enrolled_at(server, &server.url, "nurse", n, display).await
}

/// As [`laptop_with_nurses`], enrolled with `url` (an instance of `server`), its nurses named
/// `{prefix}{i}`.
async fn laptop_enrolled_at(server: &CareServer, url: &str, prefix: &str, n: usize, display: &str) -> Laptop {
    let nurses = (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}");
            let secret = server.add_nurse(&name, display, "HMP Testshire");
            (name, secret)
        })
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let data = sc_core::record::DataDir::open(dir.path()).expect("data");
    let keystore = tokio::task::spawn_blocking(Keystore::secret_service).await.expect("join").expect("keystore");
    let token = server.token("HMP Testshire").parse().expect("token");
    sc_core::enrol::enrol(&data, &keystore, url, &token).await.expect("enrol");
    let kiosk = Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk");
    Laptop { dir, data, keystore, kiosk, nurses }
}

/// Activations with the server idle, then beside `FLOODERS` tasks sending anonymous sign-ins from
/// 127.0.0.2 (the per-source limit answers most with 429; the rest cost an Argon2 check in the
/// web pages' pool, apart from the laptops').
async fn activations_under_flood() {
    let server = CareServer::start_with(crate::lab_config()).await;
    let Laptop { dir: _dir, data, keystore, kiosk, nurses } =
        laptop_with_nurses(&server, 2 * ACTIVATIONS, "Load Nurse").await;

    let idle = activate_all(&kiosk, &nurses[..ACTIVATIONS]).await;

    let statuses: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    let flood_t0 = Instant::now();
    for f in 0..FLOODERS {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(sc_core::tls::pinned(&server.ca_der).expect("tls"))
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .no_proxy()
            .build()
            .expect("client");
        let (url, statuses, stop) = (format!("{}/consult/login", server.url), statuses.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let body = serde_json::json!({ "username": format!("guess{f}-{i}"), "password": "guess guess guess", "code": "000000" });
                let slot = match client.post(&url).json(&body).send().await.map(|r| r.status().as_u16()) {
                    Ok(429) => 0,
                    Ok(_) => 1,
                    Err(_) => 2,
                };
                statuses[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The source's burst (20 tries, each a password check in the web pages' pool) is spent in
    // the flood's first second; the activations are measured beside the flood that goes on.
    tokio::time::sleep(FLOOD_BURST_SPENT).await;
    let flooded = activate_all(&kiosk, &nurses[ACTIVATIONS..]).await;
    let secs = flood_t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        let _ = f.await;
    }
    let [limited, answered, failed] = [0, 1, 2].map(|i| statuses[i].load(Ordering::Relaxed));
    println!("activations, one laptop, sequential: idle {}", summary(&idle));
    println!(
        "activations beside an anonymous sign-in flood from another address, from its {} s on ({FLOODERS} senders, {:.0} requests/s: {limited} answered 429 by the per-source limit, each held 1 s, {answered} checked and refused, {failed} failed): {}; p50 ratio flooded/idle {:.2}, p99 {:.2}",
        FLOOD_BURST_SPENT.as_secs(),
        (limited + answered + failed) as f64 / secs,
        summary(&flooded),
        percentile(&flooded, 0.5).as_secs_f64() / percentile(&idle, 0.5).as_secs_f64().max(1e-9),
        percentile(&flooded, 0.99).as_secs_f64() / percentile(&idle, 0.99).as_secs_f64().max(1e-9)
    );
    let _ = keystore.delete(&data.profile_id());
}

/// Laptops activating at once in the storage figures, and activations each.
const PARALLEL_LAPTOPS: usize = 6;
const EACH_LAPTOP: usize = 10;

/// Issue #17: activations per second from laptops in parallel, and signalling connections held,
/// by one instance on SQLite, one on PostgreSQL and two sharing one PostgreSQL database (laptops
/// alternating between them, as a load balancer spreads them). Every setup runs in this one
/// process on the same cores, so the figures compare the storage, not the machines.
async fn storage_figures() {
    // Not SC_TEST_DATABASE_URL: that would move every other figure's server to PostgreSQL too.
    let cluster = std::env::var("SC_BENCH_DATABASE_URL").ok().filter(|u| !u.is_empty());
    if cluster.is_none() {
        println!(
            "storage (issue #17): SC_BENCH_DATABASE_URL unset (scripts/bench.sh starts a cluster); PostgreSQL skipped"
        );
    }
    let setups: &[(&str, bool, bool)] = &[
        ("one instance on SQLite", false, false),
        ("one instance on PostgreSQL", true, false),
        ("two instances on one PostgreSQL database", true, true),
    ];
    let mut baseline = None;
    for &(label, on_postgres, two) in setups {
        let scratch = match (&cluster, on_postgres) {
            (_, false) => None,
            (Some(url), true) => Some(sc_server::scratch::Scratch::on(url).expect("a scratch database")),
            (None, true) => continue,
        };
        let server = CareServer::start_on(crate::lab_config(), scratch).await;
        let second = two.then(|| server.another_instance());
        let urls: Vec<String> =
            std::iter::once(server.url.clone()).chain(second.iter().map(|i| i.url.clone())).collect();
        let mut laptops = Vec::new();
        for l in 0..PARALLEL_LAPTOPS {
            laptops.push(laptop_at(&server, &urls[l % urls.len()], l).await);
        }
        let t0 = Instant::now();
        let runs = futures_util::future::join_all(laptops.iter().map(|l| activate_all(&l.kiosk, &l.nurses))).await;
        let wall = t0.elapsed();
        let mut times: Vec<Duration> = runs.into_iter().flatten().collect();
        times.sort();
        let rate = times.len() as f64 / wall.as_secs_f64().max(1e-9);
        let p99 = percentile(&times, 0.99);
        let base = *baseline.get_or_insert((rate, p99));
        let a = server.state.config.argon2;
        println!(
            "storage (issue #17), {label}: activations from {PARALLEL_LAPTOPS} laptops at once ({} in all, Argon2id m={} KiB t={}): {rate:.1}/s, p50 {} p99 {}; against one instance on SQLite: rate {:.2}x, p99 {:.2}x",
            times.len(),
            a.m_kib,
            a.t,
            ms(percentile(&times, 0.5)),
            ms(p99),
            rate / base.0.max(1e-9),
            p99.as_secs_f64() / base.1.as_secs_f64().max(1e-9)
        );
        for l in &laptops {
            let _ = l.keystore.delete(&l.data.profile_id());
        }
        let others: Vec<&sc_e2e::Instance> = second.iter().collect();
        connections(label, &server, &others).await;
    }
}

/// An enrolled laptop of HMP Testshire whose server URL is `url` (an instance of `server`), with
/// nurses of its own (named after `n`).
async fn laptop_at(server: &CareServer, url: &str, n: usize) -> Laptop {
    laptop_enrolled_at(server, url, &format!("l{n}nurse"), EACH_LAPTOP, "Storage Nurse").await
}

/// The load figures.
pub(crate) async fn load_figures() {
    let server = CareServer::start().await;
    connections("one instance", &server, &[]).await;
    drop(server);
    activations_under_flood().await;
    storage_figures().await;
}
