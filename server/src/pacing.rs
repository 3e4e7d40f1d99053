//! Healing yields to clients. While clients are updating this server, a resolution its
//! healing coordinates (rule 12: a replica catching up in the background) pauses after each
//! piece of file data it installs, for a fraction of the time the piece took: the replica
//! still catches up, and the clients writing meanwhile keep more of the machine. The pause
//! factor is at most [`MAX_PAUSE`]. A file's last piece is followed by a pause too: healing
//! resolves file after file, and that pause is the clients' share between them. Resolution
//! a client asked for (and waits on) is not paced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Clients count as updating while one of their batches waits or is applied here, and for
/// this long after the last one was.
pub const ACTIVE_FOR: Duration = Duration::from_secs(1);

/// The default pause: a quarter of each piece's time (resolution takes at most 80% of the
/// time while clients write).
pub const DEFAULT_PAUSE: f64 = 0.25;

/// Largest pause a configuration may ask for (resolution at a tenth of its speed).
pub const MAX_PAUSE: f64 = 9.0;

/// When clients last updated this server, and the pause.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// Milliseconds after `origin` of the last client batch, plus one (0: none yet).
    last_ms: AtomicU64,
    /// Client batches arrived and not yet answered. A batch queued behind healing's installs
    /// counts: were only applied batches counted, a writer starved by the installs would
    /// look gone, and healing would stop pausing for it.
    in_flight: AtomicU64,
    /// The pause factor (f64 bits).
    pause: AtomicU64,
    /// Fault injection for tests: milliseconds to wait before each piece of file data.
    install_delay_ms: AtomicU64,
}

/// Paces the resolutions this server's healing coordinates (cheap to clone: clones share
/// the clock and the pause).
#[derive(Debug, Clone)]
pub struct Pacer {
    activity: Arc<Activity>,
}

impl Pacer {
    /// A pacer that pauses `pause` times each piece's time while clients update (0: never).
    pub fn new(pause: f64) -> Pacer {
        let pacer = Pacer {
            activity: Arc::new(Activity {
                origin: Instant::now(),
                last_ms: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
                pause: AtomicU64::new(0),
                install_delay_ms: AtomicU64::new(0),
            }),
        };
        pacer.set_pause(pause);
        pacer
    }

    /// Sets the pause for this pacer and its clones (bounded to `0..=MAX_PAUSE`; a value
    /// that is not a number means 0).
    pub fn set_pause(&self, pause: f64) {
        let pause = if pause.is_finite() {
            pause.clamp(0.0, MAX_PAUSE)
        } else {
            0.0
        };
        self.activity
            .pause
            .store(pause.to_bits(), Ordering::Relaxed);
    }

    fn pause(&self) -> f64 {
        f64::from_bits(self.activity.pause.load(Ordering::Relaxed))
    }

    /// Records that a client batch was applied now.
    pub fn note_client_update(&self) {
        let ms = self.activity.origin.elapsed().as_millis() as u64 + 1;
        self.activity.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// A client batch arrived: clients count as updating until the guard is dropped (when
    /// the batch is answered or given up), and for [`ACTIVE_FOR`] after.
    pub fn client_batch(&self) -> ClientBatch {
        self.note_client_update();
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        ClientBatch {
            pacer: self.clone(),
        }
    }

    /// Whether a client batch is waiting or being applied here, or was within
    /// [`ACTIVE_FOR`].
    pub fn clients_active(&self) -> bool {
        if self.activity.in_flight.load(Ordering::Relaxed) > 0 {
            return true;
        }
        let last = self.activity.last_ms.load(Ordering::Relaxed);
        let now = self.activity.origin.elapsed().as_millis() as u64 + 1;
        last != 0 && now.saturating_sub(last) <= ACTIVE_FOR.as_millis() as u64
    }

    /// How long to pause after a piece of resolution that took `took`.
    pub fn pause_after(&self, took: Duration) -> Duration {
        let pause = self.pause();
        if pause > 0.0 && self.clients_active() {
            took.mul_f64(pause)
        } else {
            Duration::ZERO
        }
    }

    /// Fault injection for tests: every resolution this server coordinates (healing's and
    /// those clients ask for) waits `delay` before each piece of file data it installs,
    /// holding the destination longer in the state between (attributes in, data not whole),
    /// so that tests of what clients see then fail often rather than rarely.
    pub fn set_install_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.activity.install_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// The wait before each piece of file data (see [`Pacer::set_install_delay`]).
    pub fn install_delay(&self) -> Duration {
        Duration::from_millis(self.activity.install_delay_ms.load(Ordering::Relaxed))
    }

    /// Pauses after a piece of resolution that took `took`, if clients are updating.
    pub async fn after(&self, took: Duration) {
        let pause = self.pause_after(took);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// A client batch this server has received and not yet answered (see
/// [`Pacer::client_batch`]).
#[derive(Debug)]
pub struct ClientBatch {
    pacer: Pacer,
}

impl Drop for ClientBatch {
    fn drop(&mut self) {
        self.pacer.note_client_update();
        self.pacer
            .activity
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new(DEFAULT_PAUSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healing_pauses_only_while_clients_update() {
        let pacer = Pacer::new(0.25);
        let piece = Duration::from_millis(400);
        assert_eq!(pacer.pause_after(piece), Duration::ZERO, "no client yet");
        pacer.note_client_update();
        assert!(pacer.clients_active());
        assert_eq!(pacer.pause_after(piece), Duration::from_millis(100));
        // A clone shares the clock and the pause (the service and its healing rounds hold
        // one each).
        let clone = pacer.clone();
        assert_eq!(clone.pause_after(piece), Duration::from_millis(100));
        pacer.set_pause(0.5);
        assert_eq!(clone.pause_after(piece), Duration::from_millis(200));
    }

    #[test]
    fn clients_stop_counting_once_quiet() {
        // A batch applied (1 ms after the clock began) longer ago than ACTIVE_FOR.
        let quiet = Pacer {
            activity: Arc::new(Activity {
                origin: Instant::now() - ACTIVE_FOR - Duration::from_millis(50),
                last_ms: AtomicU64::new(1),
                in_flight: AtomicU64::new(0),
                pause: AtomicU64::new(1.0f64.to_bits()),
                install_delay_ms: AtomicU64::new(0),
            }),
        };
        assert!(!quiet.clients_active());
        assert_eq!(quiet.pause_after(Duration::from_secs(1)), Duration::ZERO);
        // A batch that arrived and waits (behind healing's installs) counts however long
        // it waits; once answered, it counts for ACTIVE_FOR more.
        let waiting = quiet.client_batch();
        quiet.activity.last_ms.store(1, Ordering::Relaxed);
        assert!(quiet.clients_active(), "a batch waiting");
        drop(waiting);
        assert!(quiet.clients_active(), "just answered");
        quiet.activity.last_ms.store(1, Ordering::Relaxed);
        assert!(!quiet.clients_active(), "quiet again");
    }

    #[test]
    fn a_zero_or_nonsense_pause_never_pauses_and_a_huge_one_is_bounded() {
        for pause in [0.0, -1.0, f64::NAN] {
            let pacer = Pacer::new(pause);
            pacer.note_client_update();
            assert_eq!(pacer.pause_after(Duration::from_secs(1)), Duration::ZERO);
        }
        let pacer = Pacer::new(1e9);
        pacer.note_client_update();
        assert_eq!(
            pacer.pause_after(Duration::from_secs(1)),
            Duration::from_secs(9)
        );
    }
}
