//! Where the server reads the time. Leases, settle times (how old a change must be before
//! peers compare it) and collection ages all ask a [`Clock`], so a test or the simulation
//! sets the time ([`ManualClock`]) instead of sleeping or writing private fields.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The two times the server uses.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since a fixed origin, never going back (leases, uptime).
    fn monotonic_ms(&self) -> u64;
    /// Milliseconds since the Unix epoch on this machine (stamped on changes and tombstones,
    /// which outlive a restart; a step of this clock is only ever a step in their ages).
    fn wall_ms(&self) -> u64;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The machine's clocks.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// The machine's clocks, the monotonic one counted from now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }

    /// The machine's clocks, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn wall_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that moves only when told to: both times advance together, and the wall time
/// can also be stepped alone (a clock step on one server).
#[derive(Debug)]
pub struct ManualClock {
    monotonic: AtomicU64,
    wall: AtomicU64,
}

impl ManualClock {
    /// A clock at `wall_ms` on the wall and zero on the monotonic clock.
    pub fn new(wall_ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            monotonic: AtomicU64::new(0),
            wall: AtomicU64::new(wall_ms),
        })
    }

    /// Moves both times forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.monotonic.fetch_add(ms, Ordering::SeqCst);
        self.wall.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the wall time alone (it may go back, as a real wall clock may).
    pub fn set_wall(&self, wall_ms: u64) {
        self.wall.store(wall_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn monotonic_ms(&self) -> u64 {
        self.monotonic.load(Ordering::SeqCst)
    }

    fn wall_ms(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        assert_eq!((clock.monotonic_ms(), clock.wall_ms()), (0, 1_000));
        clock.advance(Duration::from_secs(2));
        assert_eq!((clock.monotonic_ms(), clock.wall_ms()), (2_000, 3_000));
        clock.set_wall(500);
        assert_eq!((clock.monotonic_ms(), clock.wall_ms()), (2_000, 500));
    }

    #[test]
    fn the_system_clock_does_not_go_back() {
        let clock = SystemClock::new();
        let a = clock.monotonic_ms();
        assert!(clock.monotonic_ms() >= a);
        assert!(clock.wall_ms() > 1_600_000_000_000, "after 2020");
    }
}
