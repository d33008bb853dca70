//! The lock state machine with time passed in: lease, idle, activity, lock-outs, and a lock that
//! wins over a sign-in in flight.

use sc_core::activate::Unsealed;
use sc_core::lock::{LockState, Notice};
use sc_core::sealed::{Config, DataKey};
use sc_core::Error;
use sc_proto::{DeviceId, Policy, PrisonInfo};
use std::time::{Duration, Instant};

fn unsealed(lease_secs: u64, idle_secs: u64) -> Unsealed {
    Unsealed {
        config: Config {
            device_id: DeviceId::from_random([1; 16]),
            prison: PrisonInfo { id: 1, name: "HMP Test".into() },
            server_url: "https://127.0.0.1:1".into(),
            policy: Policy { lease_secs, idle_secs, dead_man_days: 14 },
            enrolled_at: 0,
        },
        key: DataKey::from_bytes([3; 32]),
        staff_name: "Jo".into(),
        server_time: 0,
        session: sc_core::activate::SessionToken::new([4; 32]),
    }
}

fn unlocked(t0: Instant, lease: u64, idle: u64) -> LockState {
    let mut s = LockState::Locked(None);
    s.begin_sign_in(t0).expect("locked -> signing in");
    s.finish_sign_in(Ok(unsealed(lease, idle)), t0);
    assert!(matches!(s, LockState::Unlocked(_)));
    s
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn the_lease_ends_the_session() {
    let t0 = Instant::now();
    let mut s = unlocked(t0, 3600, 10_000);
    for m in 1..60 {
        s.activity(t0 + S(m * 60));
        assert!(!s.tick(t0 + S(m * 60)), "still inside the lease at {m} min");
    }
    assert!(s.tick(t0 + S(3600)));
    assert!(matches!(s, LockState::Locked(Some(Notice::LeaseExpired))));
}

#[test]
fn idle_locks_and_activity_postpones_it() {
    let t0 = Instant::now();
    let mut s = unlocked(t0, 3600, 600);
    assert!(!s.tick(t0 + S(599)));
    s.activity(t0 + S(599));
    assert!(!s.tick(t0 + S(1000)), "activity reset the idle clock");
    assert!(s.tick(t0 + S(1199)));
    assert!(matches!(s, LockState::Locked(Some(Notice::Idle))));
}

#[test]
fn only_a_locked_kiosk_can_start_a_sign_in() {
    let t0 = Instant::now();
    let mut s = LockState::NotEnrolled;
    assert!(matches!(s.begin_sign_in(t0), Err(Error::NotEnrolled)));
    s.lock(Notice::UserLocked);
    assert!(matches!(s, LockState::NotEnrolled), "an unenrolled laptop stays 'not enrolled'");

    let mut s = LockState::Locked(None);
    s.begin_sign_in(t0).expect("first");
    assert!(matches!(s.begin_sign_in(t0), Err(Error::InvalidState(_))), "one sign-in at a time");
    let mut s = unlocked(t0, 60, 60);
    assert!(matches!(s.begin_sign_in(t0), Err(Error::InvalidState(_))));
}

#[test]
fn failures_become_notices_and_a_lock_out_blocks_until_it_ends() {
    let t0 = Instant::now();
    let mut s = LockState::Locked(None);
    for (err, expect) in [(Error::Unreachable, Notice::Unreachable), (Error::Refused, Notice::Refused)] {
        s.begin_sign_in(t0).expect("locked");
        s.finish_sign_in(Err(err), t0);
        assert!(matches!(&s, LockState::Locked(Some(n)) if *n == expect));
    }
    s.begin_sign_in(t0).expect("locked");
    s.finish_sign_in(Err(Error::LockedOut(300)), t0);
    assert!(matches!(s.begin_sign_in(t0 + S(299)), Err(Error::LockedOut(1))));
    s.begin_sign_in(t0 + S(300)).expect("the lock-out has ended");
}

#[test]
fn a_lock_during_sign_in_wins_and_drops_the_released_key() {
    let t0 = Instant::now();
    let mut s = LockState::Locked(None);
    s.begin_sign_in(t0).expect("locked");
    s.lock(Notice::UserLocked);
    s.finish_sign_in(Ok(unsealed(60, 60)), t0);
    assert!(matches!(s, LockState::Locked(Some(Notice::UserLocked))), "{s:?}");
}
