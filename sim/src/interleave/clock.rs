//! Virtual time: the servers' [`Clock`] and the clients' record clock both read tokio's
//! clock, which the simulation pauses, so time moves only when every task waits and a
//! run takes as long as its work, not its timers.

use codetta_server::clock::Clock;
use codetta_wire::Time;
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::time::Instant;

/// The wall time (ms since the Unix epoch) at a run's start.
const WALL_AT_START_MS: u64 = 1_800_000_000_000;

thread_local! {
    /// When this thread's run began on the virtual clock.
    static START: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Marks the start of a run on this thread (the virtual clock's zero).
pub(crate) fn start_run() {
    START.with(|s| s.set(Some(Instant::now())));
}

/// Virtual milliseconds since the run began.
pub(crate) fn elapsed_ms() -> u64 {
    let start = START.with(Cell::get).unwrap_or_else(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The clients' record clock: the virtual wall time.
pub(crate) fn client_wall() -> Time {
    Time::from_unix_ms(WALL_AT_START_MS + elapsed_ms())
}

/// One server's clocks: the virtual time, with a wall clock that may be stepped.
#[derive(Debug, Default)]
pub(crate) struct SimClock {
    /// The wall clock's step, in ms (a clock step fault).
    step_ms: AtomicI64,
}

impl SimClock {
    /// Steps this server's wall clock by `ms` (either way).
    pub(crate) fn step(&self, ms: i64) {
        self.step_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn monotonic_ms(&self) -> u64 {
        elapsed_ms()
    }

    fn wall_ms(&self) -> u64 {
        let wall = WALL_AT_START_MS + elapsed_ms();
        wall.saturating_add_signed(self.step_ms.load(Ordering::SeqCst))
    }
}
