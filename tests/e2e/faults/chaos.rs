//! The faults: a seeded schedule that, every fraction of a second, starts one (SIGKILL of a
//! server or a client daemon, a cut between a client and a server or between two servers,
//! a full disk, a step of a server's wall clock) on something no other fault holds, and
//! ends it a few seconds later. At most [`MAX_ACTIVE`] at once.

use super::rig::{Rig, SERVERS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;

/// Faults running at the same time, at most.
const MAX_ACTIVE: usize = 2;

/// One fault, with what it holds while it lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Fault {
    KillServer(usize),
    KillClient(usize),
    CutClient(usize, usize),
    CutServers(usize, usize),
    DiskFull(usize),
    ClockStep(usize, i64),
}

impl Fault {
    /// The kind, for the tally.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Fault::KillServer(_) => "server SIGKILLed",
            Fault::KillClient(_) => "client daemon SIGKILLed",
            Fault::CutClient(..) => "client-server cut",
            Fault::CutServers(..) => "server-server cut",
            Fault::DiskFull(_) => "disk full",
            Fault::ClockStep(..) => "clock step",
        }
    }

    /// What no other fault may touch meanwhile.
    fn holds(&self) -> Vec<String> {
        match *self {
            Fault::KillServer(i) | Fault::DiskFull(i) => vec![format!("server{i}")],
            Fault::KillClient(c) => vec![format!("client{c}")],
            Fault::CutClient(c, i) => vec![format!("cut c{c} s{i}")],
            Fault::CutServers(i, j) => vec![format!("cut s{i} s{j}")],
            Fault::ClockStep(i, _) => vec![format!("clock{i}")],
        }
    }

    /// A fault of a kind `kinds` allows.
    fn random(rng: &mut StdRng, clients: usize, kinds: Kinds) -> Fault {
        loop {
            let mut fault = Fault::any(rng, clients);
            if let Fault::ClockStep(server, _) = fault {
                // Steps past the tombstone age (10 minutes) let the stepped server collect
                // tombstones its peers still keep: harmless, but the replicas' digests then
                // differ for up to that age, past the run's wait (README "Known limits").
                let steps: &[i64] = if kinds.big_clock_steps {
                    &[-3600, -600, 600, 3600, 86_400]
                } else {
                    &[-300, -120, 120, 300]
                };
                fault = Fault::ClockStep(server, steps[rng.random_range(0..steps.len())]);
            }
            let allowed = match fault {
                Fault::ClockStep(..) => kinds.clock_steps,
                Fault::KillClient(_) => kinds.kill_clients,
                _ => true,
            };
            if allowed {
                return fault;
            }
        }
    }

    fn any(rng: &mut StdRng, clients: usize) -> Fault {
        let server = rng.random_range(0..SERVERS);
        match rng.random_range(0..12) {
            0..=2 => Fault::KillServer(server),
            3..=4 => Fault::KillClient(rng.random_range(0..clients)),
            5..=6 => Fault::CutClient(rng.random_range(0..clients), server),
            7..=8 => {
                let other = (server + rng.random_range(1..SERVERS)) % SERVERS;
                Fault::CutServers(server.min(other), server.max(other))
            }
            9 => Fault::DiskFull(server),
            _ => Fault::ClockStep(server, 0),
        }
    }

    async fn begin(&self, rig: &mut Rig) {
        match *self {
            Fault::KillServer(i) => rig.kill_server(i),
            Fault::KillClient(c) => rig.kill_client(c),
            Fault::CutClient(c, i) => rig.cut_client(c, i, true),
            Fault::CutServers(i, j) => rig.cut_servers(i, j, true),
            Fault::DiskFull(i) => {
                rig.kill_server(i);
                rig.set_disk_full(i, true);
                rig.start_server(i).await;
            }
            Fault::ClockStep(i, offset) => rig.set_clock(i, offset),
        }
    }

    async fn end(&self, rig: &mut Rig) {
        match *self {
            Fault::KillServer(i) => rig.start_server(i).await,
            Fault::KillClient(c) => rig.start_client(c).await,
            Fault::CutClient(c, i) => rig.cut_client(c, i, false),
            Fault::CutServers(i, j) => rig.cut_servers(i, j, false),
            Fault::DiskFull(i) => {
                rig.kill_server(i);
                rig.set_disk_full(i, false);
                rig.start_server(i).await;
            }
            Fault::ClockStep(i, _) => rig.set_clock(i, 0),
        }
    }
}

/// Which kinds of fault a schedule may start besides kills of servers, cuts and full disks.
#[derive(Clone, Copy, Debug)]
struct Kinds {
    clock_steps: bool,
    big_clock_steps: bool,
    kill_clients: bool,
}

/// What the schedule did: each fault with the seconds since the start it began and ended.
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    pub events: Vec<(f64, f64, Fault)>,
}

impl Timeline {
    /// Faults by kind.
    pub(crate) fn tally(&self) -> BTreeMap<&'static str, usize> {
        let mut t = BTreeMap::new();
        for (_, _, f) in &self.events {
            *t.entry(f.kind()).or_insert(0) += 1;
        }
        t
    }
}

/// Runs the seeded schedule over `rig` (whose first `clients` daemons the workers use)
/// until `stop`, then ends every fault still on; returns the timeline.
pub(crate) async fn run(
    rig: Arc<AsyncMutex<Rig>>,
    seed: u64,
    clients: usize,
    kill_clients: bool,
    stop: Arc<AtomicBool>,
) -> Timeline {
    let mut rng = StdRng::seed_from_u64(seed);
    let kinds = Kinds {
        clock_steps: rig.lock().await.can_step_clocks,
        big_clock_steps: std::env::var("CODETTA_FAULT_BIG_CLOCK_STEPS").is_ok_and(|v| v == "1"),
        kill_clients,
    };
    let started = Instant::now();
    let held: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let active = Arc::new(AtomicUsize::new(0));
    let timeline: Arc<Mutex<Timeline>> = Arc::default();
    let mut endings = tokio::task::JoinSet::new();
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        let fault = Fault::random(&mut rng, clients, kinds);
        let lasts = Duration::from_millis(rng.random_range(500..4000));
        {
            let Ok(mut held) = held.lock() else { break };
            let holds = fault.holds();
            if active.load(Ordering::SeqCst) >= MAX_ACTIVE || holds.iter().any(|h| held.contains(h))
            {
                continue;
            }
            held.extend(holds);
            active.fetch_add(1, Ordering::SeqCst);
        }
        let began = started.elapsed().as_secs_f64();
        fault.begin(&mut *rig.lock().await).await;
        let (rig, held, timeline, stop, active) = (
            rig.clone(),
            held.clone(),
            timeline.clone(),
            stop.clone(),
            active.clone(),
        );
        endings.spawn(async move {
            // A fault still on at the stop ends at once.
            let until = Instant::now() + lasts;
            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            fault.end(&mut *rig.lock().await).await;
            let ended = started.elapsed().as_secs_f64();
            if let Ok(mut t) = timeline.lock() {
                t.events.push((began, ended, fault));
            }
            if let Ok(mut held) = held.lock() {
                for h in fault.holds() {
                    held.remove(&h);
                }
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
    while endings.join_next().await.is_some() {}
    let mut timeline = std::mem::take(&mut *timeline.lock().expect("timeline"));
    timeline.events.sort_by(|a, b| a.0.total_cmp(&b.0));
    timeline
}
