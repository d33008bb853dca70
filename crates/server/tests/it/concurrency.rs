//! Issue #17: decisions that read before they write keep their guarantees when they race, from
//! two instances of the server at once (two stores on one PostgreSQL database, as two care
//! servers behind one address share it; on SQLite one store, whose single writer is the
//! guarantee). Threads start together and each decision runs many times over.

use sc_server::config::Lockout;
use sc_server::conn::Store;
use sc_server::db::{self, Subject};
use sc_server::keys::ServerKeys;
use sc_server::scratch::{test_store_with, Scratch};
use std::sync::{Arc, Barrier};

const THREADS: usize = 8;
const EACH: usize = 10;

/// Two instances' stores (on SQLite both are the one store) and the scratch database they share.
fn two_instances() -> (Arc<Store>, Arc<Store>, Option<Scratch>) {
    let keys = ServerKeys::random().expect("keys");
    let (first, scratch) = test_store_with(&keys).expect("db");
    let first = Arc::new(first);
    let second = match &scratch {
        Some(s) => Arc::new(db::open_postgres(s.url(), 8, &keys).expect("a second instance")),
        None => first.clone(),
    };
    (first, second, scratch)
}

/// Runs `f(store, thread)` on `THREADS` threads at once, alternating the two stores.
fn race<T: Send + 'static>(
    first: &Arc<Store>,
    second: &Arc<Store>,
    f: impl Fn(&Store, usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = if t % 2 == 0 { first.clone() } else { second.clone() };
            let (f, start) = (f.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                f(&store, t)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().expect("no thread panics")).collect()
}

fn device(store: &Store) -> sc_proto::DeviceId {
    let c = store.conn();
    sc_server::admin::add_prison(&c, "HMP Alpha", 0).expect("prison");
    let id: sc_proto::DeviceId = format!("{:032x}", 7).parse().expect("id");
    db::insert_device(&c, &id, 1, &[1; 32], "laptop", &[2; 32], 0).expect("device");
    id
}

#[test]
fn issue_17_racing_audit_writes_from_two_instances_make_one_unbroken_chain() {
    let (first, second, _scratch) = two_instances();
    race(&first, &second, |store, t| {
        for i in 0..EACH {
            let detail = format!("thread={t} i={i}");
            let entry =
                sc_server::audit::Entry { event: "test", outcome: "ok", detail: Some(detail), ..Default::default() };
            sc_server::audit::record(&store.conn(), 1_800_000_000, &entry).expect("every append lands");
        }
    });
    let verified = sc_server::audit::verify(&first.conn()).expect("db").expect("one unbroken chain");
    assert_eq!(verified.rows, u64::try_from(THREADS * EACH).expect("small"));
}

#[test]
fn issue_17_racing_failures_from_two_instances_are_each_counted() {
    let (first, second, _scratch) = two_instances();
    let id = device(&first);
    let lockout = Lockout { max_failures: 1_000, ..Lockout::default() };
    let counted = id.clone();
    race(&first, &second, move |store, _| {
        for _ in 0..EACH {
            db::record_failure(&store.conn(), Subject::Device(&counted), &lockout, 1_800_000_000).expect("counted");
        }
    });
    let failures = db::device(&first.conn(), &id).expect("db").expect("device").failures;
    assert_eq!(failures as usize, THREADS * EACH, "no failure lost to a race");
}

#[test]
fn issue_17_one_totp_step_and_one_nonce_are_spent_once_whoever_races_for_them() {
    let (first, second, _scratch) = two_instances();
    let id = device(&first);
    let staff = {
        let c = first.conn();
        let spec = sc_server::admin::StaffSpec {
            username: "nurse.a",
            display_name: "A",
            role: "nurse",
            prison: Some("HMP Alpha"),
            hospital: None,
        };
        sc_server::admin::add_staff(&c, &sc_server::config::ServerConfig::default(), spec, "correct horse battery", 0)
            .expect("staff");
        db::staff_by_username(&c, "nurse.a").expect("db").expect("staff").id
    };
    let won = race(&first, &second, move |store, _| {
        let c = store.conn();
        let step = db::set_totp_step(&c, staff, 60_000_000).expect("db");
        let nonce = db::claim_nonce(&c, &id, &[9; 16], 1_800_000_000, 240).expect("db");
        (step, nonce)
    });
    assert_eq!(won.iter().filter(|(step, _)| *step).count(), 1, "one request spends the code");
    assert_eq!(won.iter().filter(|(_, nonce)| *nonce).count(), 1, "one request claims the nonce");
}

#[test]
fn issue_17_two_instances_bricking_one_laptop_at_once_make_one_command() {
    let (first, second, _scratch) = two_instances();
    let id = device(&first);
    let target = id.clone();
    let commands = race(&first, &second, move |store, t| {
        sc_server::admin::brick_device(&store.conn(), &target, "stolen", &format!("it.{t}"), 1_800_000_000)
            .expect("brick")
    });
    assert!(commands.iter().all(|c| *c == commands[0]), "one command id: {commands:?}");
    assert_eq!(db::bricks(&first.conn()).expect("db").len(), 1);
}
