//! Issue #17: instances on one PostgreSQL database share the rooms (sc_server::bus): a laptop on
//! one and its consultant on another wait, are admitted and exchange SDP; an instance that starts
//! later has the rooms too; when one stops, the others take its connections as gone. On SQLite
//! there is one instance, and these tests have nothing to share.

use sc_proto::signal::{Appointment, FromServer, Role};
use sc_proto::DeviceId;
use sc_server::conn::Store;
use sc_server::hub::Hub;
use sc_server::keys::ServerKeys;
use sc_server::rooms::{ConnId, KioskPeer};
use sc_server::scratch::{test_store_with, Scratch};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Instances (each a store and its hub), the database they share, and their keys.
type Shared = (Vec<(Arc<Store>, Arc<Hub>)>, Scratch, ServerKeys);

/// `n` instances on one scratch PostgreSQL database; `None` on SQLite.
fn instances(n: usize) -> Option<Shared> {
    let keys = ServerKeys::random().expect("keys");
    let (first, scratch) = test_store_with(&keys).expect("db");
    let scratch = scratch?;
    let mut stores = vec![Arc::new(first)];
    for _ in 1..n {
        stores.push(Arc::new(sc_server::db::open_postgres(scratch.url(), 4, &keys).expect("another instance")));
    }
    let all = stores
        .into_iter()
        .map(|s| {
            let hub = sc_server::bus::hub(&s, Box::new(|| ())).expect("the rooms' bus");
            (s, hub)
        })
        .collect();
    Some((all, scratch, keys))
}

/// Ends, from outside, the bus session of `instance` (the backend holding its lock in this
/// database: every test's database numbers its instances from 1).
fn end_bus_session(store: &Store, instance: u32) {
    let ended: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' \
             AND classid::bigint = ?1 AND objid::bigint = ?2 AND objsubid = 2 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [0x5c17, i64::from(instance)],
            |r| r.get(0),
        )
        .expect("terminate");
    assert_eq!(ended, 1, "one session of instance {instance}");
}

fn appt(id: i64) -> Appointment {
    Appointment {
        id,
        room_code: format!("code{id}"),
        consultant: "Dr".into(),
        prison: "HMP".into(),
        starts_at: 0,
        ends_at: 1,
        patient: None,
        consultant_hospital: None,
    }
}

fn laptop(hub: &Hub, n: u8) -> (KioskPeer, UnboundedReceiver<FromServer>) {
    let (tx, rx) = unbounded_channel();
    let conn = hub.connection(tx);
    (KioskPeer { conn, device_id: DeviceId::from_random([n; 16]), prison: "HMP".into(), nurse: "Jo".into() }, rx)
}

fn page(hub: &Hub, staff_id: i64) -> (ConnId, UnboundedReceiver<FromServer>) {
    let (tx, rx) = unbounded_channel();
    let conn = hub.connection(tx);
    hub.consultant_connected(conn, staff_id);
    (conn, rx)
}

/// The messages `rx` gets until one matches `want` (or 10 s pass): that one.
fn until(rx: &mut UnboundedReceiver<FromServer>, what: &str, want: impl Fn(&FromServer) -> bool) -> FromServer {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(m) if want(&m) => return m,
            Ok(m) => seen.push(m),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("{what} never came; came instead: {seen:?}");
}

fn waiting(n: usize) -> impl Fn(&FromServer) -> bool {
    move |m| matches!(m, FromServer::WaitingRoom { waiting } if waiting.len() == n)
}

#[test]
fn issue_17_a_laptop_and_its_consultant_on_two_instances_wait_are_admitted_and_talk() {
    let Some((all, _scratch, _keys)) = instances(2) else { return };
    let ((_, a), (_, b)) = (&all[0], &all[1]);
    assert_ne!(a.instance(), b.instance());
    let (dr, mut drx) = page(b, 42);
    until(&mut drx, "the empty waiting room", waiting(0));
    let (k, mut krx) = laptop(a, 1);
    let kconn = k.conn;
    a.join(k, &appt(7), 42).expect("join on instance A");
    until(&mut krx, "waiting", |m| matches!(m, FromServer::Waiting { .. }));
    until(&mut drx, "the laptop in the waiting room on instance B", waiting(1));

    let admitted = |role| FromServer::Admitted { appointment_id: 7, role, ice_servers: vec![] };
    let call = b.admit(dr, 7, admitted).expect("admitted from instance B");
    assert_eq!(call.appointment_id, 7);
    until(&mut krx, "the laptop's admission", |m| *m == admitted(Role::Offerer));
    until(&mut drx, "the page's admission", |m| *m == admitted(Role::Answerer));

    // An offer far over a notification's 8000 bytes crosses in parts, whole.
    let sdp = "a=candidate:1 1 udp 1 10.0.0.1 9 typ relay\r\n".repeat(600);
    a.relay(kconn, FromServer::Offer { sdp: sdp.clone() }).expect("relayed to B");
    until(&mut drx, "the whole offer", |m| *m == FromServer::Offer { sdp: sdp.clone() });
    b.relay(dr, FromServer::Answer { sdp: "answer".into() }).expect("relayed to A");
    until(&mut krx, "the answer", |m| *m == FromServer::Answer { sdp: "answer".into() });
    assert!(b.call_of_consultant(dr).is_some() && a.knows_call(7));
}

#[test]
fn issue_17_an_instance_that_starts_later_has_the_rooms_and_a_stopped_ones_laptops_are_gone() {
    let Some((all, scratch, keys)) = instances(2) else { return };
    let ((_, a), (_, b)) = (&all[0], &all[1]);
    let (dr, mut drx) = page(b, 42);
    let (k, _krx) = laptop(a, 1);
    a.join(k, &appt(7), 42).expect("join");
    let admitted = |role| FromServer::Admitted { appointment_id: 7, role, ice_servers: vec![] };
    b.admit(dr, 7, admitted).expect("admitted");
    let (w, _wrx) = laptop(a, 2);
    a.join(w, &appt(8), 42).expect("a second laptop waits");
    until(&mut drx, "the second laptop waiting", waiting(1));

    // A third instance, started now, is told the rooms by the others.
    let c_store = Arc::new(sc_server::db::open_postgres(scratch.url(), 4, &keys).expect("a third instance"));
    let c = sc_server::bus::hub(&c_store, Box::new(|| ())).expect("its bus");
    assert!(c.knows_call(7), "the third instance knows the call");
    let (late, mut lrx) = page(&c, 42);
    until(&mut lrx, "the waiting room, on the third instance", waiting(1));

    // Instance A stops (as if killed: it tells nobody). The others see its session go, and take
    // its laptops as gone: the waiting one leaves the room, the call waits for its laptop.
    a.close();
    until(&mut drx, "the waiting room without A's laptop", waiting(0));
    until(&mut lrx, "the same on the third instance", waiting(0));
    assert!(b.knows_call(7) && c.knows_call(7), "the call is not over");

    // The laptop comes back through instance C: both sides are linked again.
    let (back, mut brx) = laptop(&c, 1);
    let back_conn = back.conn;
    let resumed = c.resume_kiosk(back, 7, 42).expect("resumed").expect("linked");
    assert_eq!(resumed.appointment_id, 7);
    until(&mut brx, "the laptop told", |m| *m == FromServer::Resumed { appointment_id: 7 });
    until(&mut drx, "the page told", |m| *m == FromServer::Resumed { appointment_id: 7 });
    c.relay(back_conn, FromServer::Offer { sdp: "again".into() }).expect("relayed from C to B");
    until(&mut drx, "the laptop's new offer", |m| *m == FromServer::Offer { sdp: "again".into() });
    assert!(late > 0);
}

/// Any role that may connect may LISTEN and NOTIFY: what it hears is sealed, and what it sends
/// (a replay, an edit, a message of its own) changes nothing.
#[test]
fn issue_17_a_listener_on_the_database_reads_nothing_and_cannot_replay_or_forge() {
    let Some((all, _scratch, _keys)) = instances(2) else { return };
    let ((store, a), (_, b)) = (&all[0], &all[1]);
    let mut eavesdropper = store.session("sc_rooms", (1, 1)).expect("a session").expect("PostgreSQL");
    let (dr, mut drx) = page(b, 42);
    let (k, _krx) = laptop(a, 1);
    let kconn = k.conn;
    a.join(k, &appt(7), 42).expect("join");
    let admitted = |role| FromServer::Admitted { appointment_id: 7, role, ice_servers: vec![] };
    b.admit(dr, 7, admitted).expect("admitted");
    until(&mut drx, "the admission", |m| *m == admitted(Role::Answerer));
    // Everything before the offer, heard and let go (another session may hear it a moment later).
    std::thread::sleep(Duration::from_millis(500));
    while eavesdropper.notes.try_recv().is_ok() {}

    a.relay(kconn, FromServer::Offer { sdp: "v=0 secret-ice-pwd".into() }).expect("relayed");
    until(&mut drx, "the offer", |m| matches!(m, FromServer::Offer { .. }));
    let deadline = Instant::now() + Duration::from_secs(10);
    let heard = loop {
        match eavesdropper.notes.try_recv() {
            Ok(p) => break p,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("the eavesdropper heard nothing: {e}"),
        }
    };
    assert!(!heard.contains("secret-ice-pwd") && !heard.contains("offer"), "sealed: {heard}");

    let notify = |payload: &str| {
        store.conn().execute("SELECT pg_notify('sc_rooms', ?1)", [payload]).expect("notify");
    };
    // The same message again; with its sealed text edited; a sealed-looking message of its own.
    notify(&heard);
    let (head, tail) = heard.split_at(heard.len() - 4);
    notify(&format!("{head}{}", if tail == "AAAA" { "BBBB" } else { "AAAA" }));
    let from = heard.split(' ').nth(1).expect("the sender");
    notify(&format!("b1 {from} 999999 0 1 sealed1:{}", "A".repeat(60)));
    // A real change after them comes through, and nothing before it did.
    b.relay(dr, FromServer::Answer { sdp: "answer".into() }).expect("relayed");
    a.relay(kconn, FromServer::Offer { sdp: "second".into() }).expect("relayed");
    let next = until(&mut drx, "the second offer", |m| matches!(m, FromServer::Offer { .. }));
    assert_eq!(next, FromServer::Offer { sdp: "second".into() }, "the replayed offer was not delivered");
}

/// An instance whose bus session dies (the database restarted, or an administrator ended it)
/// refuses changes, closes its connections (the callback) and says so (the server then stops);
/// the others take its connections as gone.
#[test]
fn issue_17_an_instance_that_loses_its_bus_refuses_changes_and_stops() {
    let keys = ServerKeys::random().expect("keys");
    let (first, scratch) = test_store_with(&keys).expect("db");
    let Some(scratch) = scratch else { return };
    let store = Arc::new(first);
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let told = closed.clone();
    let a = sc_server::bus::hub(&store, Box::new(move || told.store(true, std::sync::atomic::Ordering::SeqCst)))
        .expect("instance A");
    let b_store = Arc::new(sc_server::db::open_postgres(scratch.url(), 4, &keys).expect("instance B"));
    let b = sc_server::bus::hub(&b_store, Box::new(|| ())).expect("instance B's bus");
    let (dr, mut drx) = page(&b, 42);
    until(&mut drx, "the empty waiting room", waiting(0));
    let (k, _krx) = laptop(&a, 1);
    a.join(k, &appt(7), 42).expect("join on A");
    until(&mut drx, "A's laptop waiting", waiting(1));
    let mut lost = a.lost();
    assert!(!*lost.borrow_and_update());

    // Its session's backend, ended from outside.
    end_bus_session(&store, a.instance());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !*lost.borrow_and_update() {
        assert!(Instant::now() < deadline, "A saw its bus lost");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(closed.load(std::sync::atomic::Ordering::SeqCst), "A's connections were closed");
    let (k2, _k2rx) = laptop(&a, 2);
    assert_eq!(a.join(k2, &appt(8), 42), Err(sc_server::rooms::RoomError::Unavailable), "A refuses changes");
    until(&mut drx, "B taking A's laptop as gone", waiting(0));
    let _ = dr;
}

/// The same loss under a serving instance: `serve::Running::ended` returns, with the reason,
/// so `care-server serve` exits non-zero and systemd starts it again with a fresh copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_17_a_serving_instance_whose_bus_is_lost_stops() {
    let Some(scratch) = Scratch::from_env().map(|s| s.expect("a scratch database")) else { return };
    let dir = tempfile::tempdir().expect("data dir");
    sc_server::pki::init(dir.path(), &[]).expect("pki");
    let keys = sc_server::pki::load(dir.path()).expect("keys");
    let mut config = sc_server::config::ServerConfig { data_dir: dir.path().to_path_buf(), ..Default::default() };
    config.database.url = Some(scratch.url().to_owned());
    let store = sc_server::db::open_configured(&config).expect("store");
    let state = sc_server::AppState::new(store, config, keys.command_key.clone(), sc_server::state::system_clock())
        .expect("state");
    let mut running =
        sc_server::serve::start(state.clone(), &keys, "127.0.0.1:0".parse().expect("addr")).expect("serve");
    end_bus_session(&state.db, state.hub.instance());
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.ended()).await.expect("the server stopped");
    let e = stopped.expect_err("with an error");
    assert!(e.to_string().contains("rooms"), "{e}");
}
