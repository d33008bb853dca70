//! The kiosk's own timer, the thin loop around [`Kiosk::tick`]: once a second it applies the
//! kiosk's rules (lease, idle with a call counting as activity, the dead-man timer) whether or not
//! the page asks, and whenever an unlocked session ends, for whatever reason, it ends the call.

use crate::kiosk::{Kiosk, KioskView};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// How often the rules are applied.
pub const TICK: Duration = Duration::from_secs(1);

/// What the kiosk needs from whoever runs its calls (the shell; the call engine is another crate).
pub trait CallControl: Send + Sync {
    /// Whether a call is under way (joining, waiting, connecting or in the call).
    fn in_call(&self) -> bool;
    /// Ends any call: the laptop locked.
    fn end_calls(&self);
}

/// Runs until the kiosk is dropped. The runtime it runs on also becomes the kiosk's runtime for
/// background work (see [`Kiosk::attach_runtime`]).
pub async fn run(kiosk: Arc<Kiosk>, calls: Arc<dyn CallControl>) {
    kiosk.attach_runtime(tokio::runtime::Handle::current());
    let mut ended = kiosk.sessions_ended();
    // Held weakly, so the timer never keeps a closed kiosk alive.
    let weak = Arc::downgrade(&kiosk);
    drop(kiosk);
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let Some(kiosk) = weak.upgrade() else { return };
                let in_call = calls.in_call();
                // A call never outlives the session it was started in (one started just as the
                // laptop locked is ended here).
                if !matches!(kiosk.tick(in_call), KioskView::Unlocked { .. }) && in_call {
                    calls.end_calls();
                    // Any session end this tick caused is dealt with.
                    ended.borrow_and_update();
                }
            }
            changed = ended.changed() => {
                if changed.is_err() {
                    return; // the kiosk is gone
                }
                tracing::info!("the session ended: ending any call");
                calls.end_calls();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::kiosk::test_support::{enrolled, unsealed};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(Default)]
    struct FakeCalls {
        active: AtomicBool,
        ended: AtomicUsize,
    }

    impl CallControl for FakeCalls {
        fn in_call(&self) -> bool {
            self.active.load(Ordering::SeqCst)
        }
        fn end_calls(&self) {
            self.active.store(false, Ordering::SeqCst);
            self.ended.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Lets the timer task run its due ticks after the kiosk's clock and Tokio's moved by `secs`.
    async fn pass(hand: &ManualClock, secs: u64) {
        for _ in 0..secs {
            hand.advance(Duration::from_secs(1));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // Let the task see the last tick and any end of session.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_keeps_the_idle_lock_off_and_the_lease_lock_ends_it() {
        let hand = ManualClock::starting_at(1_000_000);
        let (_dir, kiosk) = enrolled(hand.clock());
        let kiosk = Arc::new(kiosk);
        kiosk.unlock_for_test(unsealed(3600, 600));
        let calls = Arc::new(FakeCalls::default());
        tokio::spawn(run(kiosk.clone(), calls.clone()));

        calls.active.store(true, Ordering::SeqCst);
        pass(&hand, 1200).await;
        assert!(matches!(kiosk.screen(), KioskView::Unlocked { .. }), "twice the idle time, in a call");
        assert_eq!(calls.ended.load(Ordering::SeqCst), 0);

        // The call ends: idle counts from then.
        calls.active.store(false, Ordering::SeqCst);
        pass(&hand, 599).await;
        assert!(matches!(kiosk.screen(), KioskView::Unlocked { .. }), "idle counts from the end of the call");
        calls.active.store(true, Ordering::SeqCst);
        pass(&hand, 3600 - 1200 - 599).await;
        let KioskView::Locked { notice: Some(n) } = kiosk.screen() else { panic!("the lease ended the session") };
        assert_eq!(n.kind, "lease_expired");
        assert_eq!(calls.ended.load(Ordering::SeqCst), 1, "locking ended the call");
        assert!(kiosk.session_token().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_lock_and_a_lock_from_another_thread_end_the_call() {
        let hand = ManualClock::starting_at(1_000_000);
        let (_dir, kiosk) = enrolled(hand.clock());
        let kiosk = Arc::new(kiosk);
        kiosk.unlock_for_test(unsealed(3600, 600));
        let calls = Arc::new(FakeCalls::default());
        tokio::spawn(run(kiosk.clone(), calls.clone()));
        pass(&hand, 599).await;
        assert!(matches!(kiosk.screen(), KioskView::Unlocked { .. }));
        pass(&hand, 1).await;
        let KioskView::Locked { notice: Some(n) } = kiosk.screen() else { panic!("idle lock") };
        assert_eq!(n.kind, "idle");
        assert_eq!(calls.ended.load(Ordering::SeqCst), 1);

        kiosk.unlock_for_test(unsealed(3600, 600));
        let k = kiosk.clone();
        std::thread::spawn(move || k.lock()).join().expect("lock from a plain thread");
        pass(&hand, 0).await;
        assert_eq!(calls.ended.load(Ordering::SeqCst), 2, "a lock from any thread ends the call");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_on_a_locked_laptop_is_ended_at_the_next_tick() {
        let hand = ManualClock::starting_at(1_000_000);
        let (_dir, kiosk) = enrolled(hand.clock());
        let kiosk = Arc::new(kiosk);
        let calls = Arc::new(FakeCalls::default());
        tokio::spawn(run(kiosk.clone(), calls.clone()));
        pass(&hand, 1).await;
        calls.active.store(true, Ordering::SeqCst);
        pass(&hand, 1).await;
        assert_eq!(calls.ended.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_stops_with_the_kiosk() {
        let hand = ManualClock::starting_at(1_000_000);
        let (_dir, kiosk) = enrolled(hand.clock());
        let kiosk = Arc::new(kiosk);
        let task = tokio::spawn(run(kiosk.clone(), Arc::new(FakeCalls::default())));
        pass(&hand, 2).await;
        drop(kiosk);
        pass(&hand, 2).await;
        assert!(task.is_finished());
    }
}
