//! The kiosk's one clock: wall time in Unix seconds (signed timestamps, the dead-man timer) and
//! monotonic time (leases, idle), read from the system or, in tests, moved by hand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Wall = Arc<dyn Fn() -> i64 + Send + Sync>;
type Monotonic = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Where the kiosk reads the time. Cheap to clone; every clone reads the same source.
#[derive(Clone)]
pub struct Clock {
    wall: Wall,
    monotonic: Monotonic,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(unix {})", self.unix_now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

/// Unix seconds on the system clock; 0 before 1970, saturating far in the future.
fn system_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Clock {
    /// The system's clocks.
    pub fn system() -> Self {
        Clock { wall: Arc::new(system_unix), monotonic: Arc::new(Instant::now) }
    }

    /// Wall time from `wall` (tests move it for the dead-man timer), monotonic time from the system.
    pub fn with_wall(wall: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock { wall: Arc::new(wall), monotonic: Arc::new(Instant::now) }
    }

    /// Now, Unix seconds.
    pub fn unix_now(&self) -> i64 {
        (self.wall)()
    }

    /// Now, on the monotonic clock.
    pub fn instant(&self) -> Instant {
        (self.monotonic)()
    }
}

/// A wall-time function is a clock (see [`Clock::with_wall`]).
impl<F: Fn() -> i64 + Send + Sync + 'static> From<Arc<F>> for Clock {
    fn from(wall: Arc<F>) -> Self {
        Clock::with_wall(move || wall())
    }
}

/// A clock for tests that moves only when told, wall and monotonic time together.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start_unix: i64,
    start: Instant,
    elapsed: Arc<Mutex<Duration>>,
}

impl ManualClock {
    /// Stopped at `unix` seconds.
    pub fn starting_at(unix: i64) -> Self {
        ManualClock { start_unix: unix, start: Instant::now(), elapsed: Arc::new(Mutex::new(Duration::ZERO)) }
    }

    /// Moves both times forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += by;
    }

    fn elapsed(&self) -> Duration {
        // Only ever holds a Duration, replaced whole: a poisoned lock still holds a sound one.
        *self.elapsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The [`Clock`] this drives.
    pub fn clock(&self) -> Clock {
        let (wall, monotonic) = (self.clone(), self.clone());
        Clock {
            wall: Arc::new(move || {
                wall.start_unix.saturating_add(i64::try_from(wall.elapsed().as_secs()).unwrap_or(i64::MAX))
            }),
            monotonic: Arc::new(move || monotonic.start + monotonic.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_both_times_together_and_only_when_told() {
        let hand = ManualClock::starting_at(1_000);
        let clock = hand.clock();
        let t0 = clock.instant();
        assert_eq!((clock.unix_now(), clock.instant()), (1_000, t0));
        hand.advance(Duration::from_secs(90));
        assert_eq!(clock.unix_now(), 1_090);
        assert_eq!(clock.instant() - t0, Duration::from_secs(90));
    }

    #[test]
    fn the_system_clock_is_after_2020_and_a_wall_function_is_a_clock() {
        assert!(Clock::system().unix_now() > 1_577_836_800);
        let fixed: Clock = Arc::new(|| 42).into();
        assert_eq!(fixed.unix_now(), 42);
    }
}
