//! The kiosk's one clock: wall time in Unix seconds (signed timestamps), monotonic time (leases,
//! idle) and boot time (the dead-man timer: which boot, and how long since it began, suspend
//! included), read from the system or, in tests, moved by hand.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Wall = Arc<dyn Fn() -> i64 + Send + Sync>;
type Monotonic = Arc<dyn Fn() -> Instant + Send + Sync>;
type Boot = Arc<dyn Fn() -> BootTime + Send + Sync>;

/// Where the laptop is in its current boot: the kernel's id for this boot and the seconds since
/// it began, suspend included. Nobody can set it back short of a reboot, which changes the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTime {
    /// The kernel's random id for this boot (`/proc/sys/kernel/random/boot_id`).
    pub id: String,
    /// Seconds since the boot began (`/proc/uptime`, which counts suspend).
    pub secs: u64,
}

/// The boot time from the kernel. Off Linux there is no boot id: the id is empty (every reading
/// of the same boot) and the seconds come from sysinfo.
pub fn system_boot() -> BootTime {
    let id =
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default();
    let secs = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|f| f.parse::<f64>().ok()))
        // Whole seconds: a count in days needs no more, and truncation never counts ahead.
        .map_or_else(|| sysinfo::System::uptime().unwrap_or(0), |f| f as u64);
    BootTime { id, secs }
}

/// Where the kiosk reads the time. Cheap to clone; every clone reads the same source.
#[derive(Clone)]
pub struct Clock {
    wall: Wall,
    monotonic: Monotonic,
    boot: Boot,
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
        Clock { wall: Arc::new(system_unix), monotonic: Arc::new(Instant::now), boot: Arc::new(system_boot) }
    }

    /// Wall time from `wall` (a clock set wrong), monotonic and boot time from the system.
    pub fn with_wall(wall: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock { wall: Arc::new(wall), monotonic: Arc::new(Instant::now), boot: Arc::new(system_boot) }
    }

    /// Now, Unix seconds.
    pub fn unix_now(&self) -> i64 {
        (self.wall)()
    }

    /// Now, on the monotonic clock.
    pub fn instant(&self) -> Instant {
        (self.monotonic)()
    }

    /// Now, on the boot-time clock.
    pub fn boot(&self) -> BootTime {
        (self.boot)()
    }
}

/// A wall-time function is a clock (see [`Clock::with_wall`]).
impl<F: Fn() -> i64 + Send + Sync + 'static> From<Arc<F>> for Clock {
    fn from(wall: Arc<F>) -> Self {
        Clock::with_wall(move || wall())
    }
}

/// A clock for tests that moves only when told: wall, monotonic and boot time together, and the
/// wall clock alone when it is set (as a person or a bad battery would), and a reboot.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    hands: Arc<Mutex<Hands>>,
}

#[derive(Debug)]
struct Hands {
    /// Wall time at `elapsed` zero, moved by [`ManualClock::set_wall`].
    unix_at_start: i64,
    elapsed: Duration,
    boot: u32,
    /// `elapsed` when the current boot began.
    boot_began: Duration,
}

impl ManualClock {
    /// Stopped at `unix` seconds, in boot 0, which began then.
    pub fn starting_at(unix: i64) -> Self {
        let hands = Hands { unix_at_start: unix, elapsed: Duration::ZERO, boot: 0, boot_began: Duration::ZERO };
        ManualClock { start: Instant::now(), hands: Arc::new(Mutex::new(hands)) }
    }

    fn hands(&self) -> std::sync::MutexGuard<'_, Hands> {
        // Plain values replaced whole: a poisoned lock still holds sound ones.
        self.hands.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves every time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.hands().elapsed += by;
    }

    /// Sets the wall clock by `delta` seconds (negative: back), leaving the others alone.
    pub fn set_wall(&self, delta: i64) {
        let mut h = self.hands();
        h.unix_at_start = h.unix_at_start.saturating_add(delta);
    }

    /// Switches off for `off`, then boots again: a new boot id, boot time from zero.
    pub fn reboot(&self, off: Duration) {
        let mut h = self.hands();
        h.elapsed += off;
        h.boot += 1;
        h.boot_began = h.elapsed;
    }

    fn wall(&self) -> i64 {
        let h = self.hands();
        h.unix_at_start.saturating_add(i64::try_from(h.elapsed.as_secs()).unwrap_or(i64::MAX))
    }

    fn boot(&self) -> BootTime {
        let h = self.hands();
        BootTime { id: format!("manual-boot-{}", h.boot), secs: (h.elapsed - h.boot_began).as_secs() }
    }

    /// The [`Clock`] this drives.
    pub fn clock(&self) -> Clock {
        let (wall, monotonic, boot) = (self.clone(), self.clone(), self.clone());
        Clock {
            wall: Arc::new(move || wall.wall()),
            monotonic: Arc::new(move || monotonic.start + monotonic.hands().elapsed),
            boot: Arc::new(move || boot.boot()),
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
        assert_eq!(clock.boot().secs, 90);
        hand.set_wall(-1_000);
        assert_eq!((clock.unix_now(), clock.instant() - t0, clock.boot().secs), (90, Duration::from_secs(90), 90));
        let first = clock.boot().id;
        hand.reboot(Duration::from_secs(60));
        assert_eq!((clock.unix_now(), clock.boot().secs), (150, 0));
        assert_ne!(clock.boot().id, first, "a reboot is a new boot");
    }

    #[test]
    fn the_system_boot_clock_has_an_id_and_runs() {
        let (a, b) = (system_boot(), system_boot());
        assert!(!a.id.is_empty(), "Linux gives every boot an id");
        assert_eq!(a.id, b.id);
        assert!(b.secs >= a.secs && a.secs > 0);
    }

    #[test]
    fn the_system_clock_is_after_2020_and_a_wall_function_is_a_clock() {
        assert!(Clock::system().unix_now() > 1_577_836_800);
        let fixed: Clock = Arc::new(|| 42).into();
        assert_eq!(fixed.unix_now(), 42);
    }
}
