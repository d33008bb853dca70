//! The lock state machine with time passed in: lease, idle, activity, a call counting as activity,
//! lock-outs, and a lock that wins over a sign-in in flight.

use sc_core::lock::{Lease, LockState, Notice};
use sc_core::Error;
use std::time::{Duration, Instant};

/// What a sign-in unseals, reduced to what the lock machine reads.
#[derive(Debug, PartialEq, Eq)]
struct Limits {
    lease: u64,
    idle: u64,
}

impl Lease for Limits {
    fn lease(&self) -> Duration {
        S(self.lease)
    }
    fn idle_limit(&self) -> Duration {
        S(self.idle)
    }
}

fn unlocked(t0: Instant, lease: u64, idle: u64) -> LockState<Limits> {
    let mut s = LockState::Locked(None);
    s.begin_sign_in(t0).expect("locked -> signing in");
    assert!(s.finish_sign_in(Ok(Limits { lease, idle }), t0).is_none(), "taken");
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
        assert_eq!(s.tick(t0 + S(m * 60), false), None, "still inside the lease at {m} min");
    }
    assert_eq!(s.due(t0 + S(3600)), Some(Notice::LeaseExpired), "due, not yet applied");
    assert!(s.is_unlocked());
    assert_eq!(s.tick(t0 + S(3600), false), Some(Notice::LeaseExpired));
    assert!(matches!(s, LockState::Locked(Some(Notice::LeaseExpired))));
}

#[test]
fn idle_locks_and_activity_postpones_it() {
    let t0 = Instant::now();
    let mut s = unlocked(t0, 3600, 600);
    assert_eq!(s.tick(t0 + S(599), false), None);
    s.activity(t0 + S(599));
    assert_eq!(s.tick(t0 + S(1000), false), None, "activity reset the idle clock");
    assert_eq!(s.tick(t0 + S(1199), false), Some(Notice::Idle));
    assert!(matches!(s, LockState::Locked(Some(Notice::Idle))));
}

#[test]
fn a_call_counts_as_activity_until_it_ends_but_not_past_the_lease() {
    let t0 = Instant::now();
    let mut s = unlocked(t0, 3600, 600);
    assert_eq!(s.tick(t0 + S(100), true), None, "a call starts");
    assert_eq!(s.tick(t0 + S(2000), true), None, "no idle lock while the call goes on");
    let LockState::Unlocked(session) = &s else { panic!("unlocked") };
    assert_eq!(session.idle_left(t0 + S(2000)), S(600), "the page is told the full idle time");
    assert_eq!(s.tick(t0 + S(2001), false), None, "the call ended: idle counts from here");
    assert_eq!(s.tick(t0 + S(2600), false), None);
    assert_eq!(s.tick(t0 + S(2601), false), Some(Notice::Idle));

    let mut s = unlocked(t0, 3600, 600);
    assert_eq!(s.tick(t0 + S(3599), true), None);
    assert_eq!(s.tick(t0 + S(3600), true), Some(Notice::LeaseExpired), "the lease ends even a call");
}

#[test]
fn only_a_locked_kiosk_can_start_a_sign_in() {
    let t0 = Instant::now();
    let mut s: LockState<Limits> = LockState::NotEnrolled;
    assert!(matches!(s.begin_sign_in(t0), Err(Error::NotEnrolled)));
    s.lock(Notice::UserLocked);
    assert!(matches!(s, LockState::NotEnrolled), "an unenrolled laptop stays 'not enrolled'");

    let mut s: LockState<Limits> = LockState::Locked(None);
    s.begin_sign_in(t0).expect("first");
    assert!(matches!(s.begin_sign_in(t0), Err(Error::InvalidState(_))), "one sign-in at a time");
    let mut s = unlocked(t0, 60, 60);
    assert!(matches!(s.begin_sign_in(t0), Err(Error::InvalidState(_))));
}

#[test]
fn failures_become_notices_and_a_lock_out_blocks_until_it_ends() {
    let t0 = Instant::now();
    let mut s: LockState<Limits> = LockState::Locked(None);
    for (err, expect) in [(Error::Unreachable, Notice::Unreachable), (Error::Refused, Notice::Refused)] {
        s.begin_sign_in(t0).expect("locked");
        s.finish_sign_in(Err(err), t0);
        assert!(matches!(&s, LockState::Locked(Some(n)) if *n == expect));
    }
    s.begin_sign_in(t0).expect("locked");
    s.finish_sign_in(Err(Error::SealBroken), t0);
    assert_eq!(s.due(t0), None, "nothing is due on a locked laptop: {s:?}");
    assert!(matches!(&s, LockState::Locked(Some(Notice::Failed(w))) if *w == Error::SealBroken.for_nurse()));
    s.begin_sign_in(t0).expect("locked");
    s.finish_sign_in(Err(Error::LockedOut(300)), t0);
    assert!(matches!(s.begin_sign_in(t0 + S(299)), Err(Error::LockedOut(1))));
    s.begin_sign_in(t0 + S(300)).expect("the lock-out has ended");
}

#[test]
fn a_lock_during_sign_in_wins_and_hands_back_the_released_session() {
    let t0 = Instant::now();
    let mut s = LockState::Locked(None);
    s.begin_sign_in(t0).expect("locked");
    s.lock(Notice::UserLocked);
    let untaken = s.finish_sign_in(Ok(Limits { lease: 60, idle: 60 }), t0);
    assert_eq!(untaken, Some(Limits { lease: 60, idle: 60 }), "the caller ends that session");
    assert!(matches!(s, LockState::Locked(Some(Notice::UserLocked))), "{s:?}");
}
