//! The fault matrix, end to end: three servers and two client daemons as processes on
//! loopback QUIC, four workers recording every acknowledged operation, a seeded schedule of
//! faults (SIGKILLs of servers and client daemons, client-server and server-server cuts, a
//! full disk, wall-clock steps), then every fault ended, everything SIGKILLed and started
//! again, the replicas waited for until their digests agree, and every name read back
//! through a fresh client daemon and compared with the record (see `check`).
//!
//! One run of [`DEFAULT_SECS`] in every test run; a long run by command:
//! `CODETTA_FAULT_RUNS=20 CODETTA_FAULT_SECS=60 cargo test --release --test e2e -- faults
//! --nocapture` (`CODETTA_FAULT_SEED` picks the first seed; the schedule and the workload
//! follow the seed, their timing does not, so a seed reruns the same faults and operations
//! but not the same interleaving). A failing run keeps its directory (with
//! `CODETTA_FAULT_KEEP=1` every run does): the logs, `faults.timeline`, `failures` and each
//! worker's operations.
//!
//! `CODETTA_FAULT_KILL_CLIENTS=0` leaves SIGKILLs of the client daemons out of the schedule
//! (everything is still SIGKILLed once at the end). Clock steps are 2-5 minutes unless
//! `CODETTA_FAULT_BIG_CLOCK_STEPS=1` (-1 h to +1 day): past the tombstone age a stepped
//! server collects tombstones early and the digests differ for up to 10 minutes.

mod chaos;
mod check;
mod driver;
mod rig;

use crate::support::nfs::Nfs;
use codetta_bench::patiently;
use codetta_testkit::dir_check::Report;
use codetta_testkit::shared_files::shared_content;
use driver::{SharedLog, Worker};
use nfs3_client::nfs3_types::nfs3::stable_how;
use rand::SeedableRng;
use rig::Rig;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Seconds of faults in the run every test run makes.
const DEFAULT_SECS: u64 = 30;
/// Client daemons the workers use, and workers on each.
const CLIENTS: usize = 2;
const WORKERS_PER_CLIENT: usize = 2;
/// Files every worker writes to.
const SHARED_FILES: usize = 3;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_operation_is_lost_under_the_fault_matrix() {
    let runs = env_u64("CODETTA_FAULT_RUNS").unwrap_or(1);
    let secs = env_u64("CODETTA_FAULT_SECS").unwrap_or(DEFAULT_SECS);
    let first = env_u64("CODETTA_FAULT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let kill_clients = env_u64("CODETTA_FAULT_KILL_CLIENTS").is_none_or(|v| v != 0);
    let mut failed = Vec::new();
    for seed in first..first + runs {
        let summary = one_run(seed, Duration::from_secs(secs), kill_clients).await;
        println!("{}", summary.line);
        if !summary.failures.is_empty() {
            failed.push(format!(
                "seed {seed}: {} failures, the first: {}",
                summary.failures.len(),
                summary.failures[..summary.failures.len().min(12)].join("; ")
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// What one run printed and found wrong.
struct Summary {
    line: String,
    failures: Vec<String>,
}

async fn one_run(seed: u64, faults_for: Duration, kill_clients: bool) -> Summary {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rig = Rig::start(tmp.path(), CLIENTS).await;
    if !rig.can_step_clocks {
        // CI installs it and sets CODETTA_FAULT_NEED_CLOCKS, so it cannot go missing there.
        assert!(
            env_u64("CODETTA_FAULT_NEED_CLOCKS").is_none_or(|v| v == 0),
            "libfaketime is missing: install Debian's `faketime` package"
        );
        println!("fault matrix: no clock steps (libfaketime missing: apt install faketime)");
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Set-up, before any fault: a directory per worker and the shared files.
    let mut nfs = Nfs::connect(rig.nfs_port(0)).await.expect("mount");
    let root = nfs.root.clone();
    let shared_dir = patiently!(nfs.mkdir(&root, "shared").await).expect("mkdir shared");
    let mut shared = Vec::new();
    let mut initial = Vec::new();
    for i in 0..SHARED_FILES {
        let f = patiently!(nfs.create(&shared_dir, &format!("s{i}")).await).expect("create");
        let data = shared_content("set-up", i as u64, &mut rng);
        patiently!(nfs.write(&f, 0, &data, stable_how::FILE_SYNC).await).expect("write");
        initial.push(*blake3::hash(&data).as_bytes());
        shared.push(f);
    }
    let shared_log = SharedLog::default();
    let mut workers = Vec::new();
    for c in 0..CLIENTS {
        for k in 0..WORKERS_PER_CLIENT {
            let name = format!("w{c}-{k}");
            let dir = patiently!(nfs.mkdir(&root, &name).await).expect("mkdir");
            workers.push(Worker::new(
                name,
                rig.nfs_port(c),
                seed.wrapping_mul(1000) + (c * 10 + k) as u64,
                dir,
                shared.clone(),
                shared_log.clone(),
            ));
        }
    }
    drop(nfs);

    // The faults and the workload, together.
    let rig = Arc::new(tokio::sync::Mutex::new(rig));
    let stop = Arc::new(AtomicBool::new(false));
    let began_at = std::time::SystemTime::now();
    let chaos = tokio::spawn(chaos::run(
        rig.clone(),
        seed,
        CLIENTS,
        kill_clients,
        stop.clone(),
    ));
    let running: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(w.run(stop.clone())))
        .collect();
    tokio::time::sleep(faults_for).await;
    stop.store(true, Ordering::SeqCst);
    let timeline = chaos.await.expect("fault schedule");
    let mut workers = Vec::new();
    for w in running {
        workers.push(w.await.expect("worker"));
    }

    // Every fault over; then a restart of everything, and the cluster settles.
    let mut rig = Arc::into_inner(rig).expect("rig").into_inner();
    rig.heal_all(CLIENTS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.restart_everything(CLIENTS).await;
    // The client daemons ship what their logs still hold, then stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for c in 0..CLIENTS {
        rig.stop_client(c);
    }
    let mut report = Report::default();
    let settle_started = Instant::now();
    let settled = rig.converge(Duration::from_secs(120)).await;
    if let Err(e) = &settled {
        report
            .failures
            .push(format!("replicas did not converge within 120 s: {e}"));
    }
    let settle_secs = settle_started.elapsed().as_secs_f64();

    // Read everything back through a client daemon that never saw any of it.
    let checker = rig.add_direct_client("checker").await;
    let mut nfs = Nfs::connect(rig.nfs_port(checker))
        .await
        .expect("mount checker");
    let root = nfs.root.clone();
    for w in &workers {
        let dir = patiently!(nfs.lookup(&root, &w.name).await).expect("worker directory");
        check::check_dir(&mut nfs, &dir, &w.model, &w.name, &mut report).await;
    }
    let shared_dir = patiently!(nfs.lookup(&root, "shared").await).expect("shared directory");
    let writes = shared_log.lock().expect("shared log").clone();
    check::check_shared(&mut nfs, &shared_dir, &initial, &writes, &mut report).await;
    let conflicts = rig.conflicts().await;

    let acked: u64 = workers.iter().map(|w| w.model.acked).sum();
    let uncertain: u64 = workers.iter().map(|w| w.model.uncertain).sum();
    let shared_acked = writes.iter().filter(|w| w.acked).count();
    let skipped: u64 = workers.iter().map(|w| w.skipped).sum();
    let line = format!(
        "fault matrix seed {seed}: {} faults ({:?}); {acked} operations acknowledged, \
         {uncertain} unanswered, {skipped} waits for a connection, shared writes {shared_acked} of {}; settled in {settle_secs:.1} s; \
         checked {} names, {:.1} MiB read back, conflict copies: {} of shared files, {} in \
         single-writer directories {:?} (servers list {:?}); {} failures",
        timeline.events.len(),
        timeline.tally(),
        writes.len(),
        report.names,
        report.bytes as f64 / f64::from(1 << 20),
        report.shared_conflicts,
        report.own_conflicts.len(),
        report.own_conflicts,
        conflicts,
        report.failures.len(),
    );
    if !report.failures.is_empty() || env_u64("CODETTA_FAULT_KEEP").is_some_and(|v| v != 0) {
        let lines: Vec<String> = timeline
            .events
            .iter()
            .map(|(began, ended, fault)| format!("{began:7.2} .. {ended:7.2} s  {fault:?}"))
            .chain(std::iter::once(format!("(times from {began_at:?})")))
            .collect();
        std::fs::write(tmp.path().join("faults.timeline"), lines.join("\n"))
            .expect("write timeline");
        let failures = format!("{line}\n{}\n", report.failures.join("\n"));
        std::fs::write(tmp.path().join("failures"), failures).expect("write failures");
        for w in &workers {
            let path = tmp.path().join(format!("{}.ops", w.name));
            std::fs::write(&path, w.history.join("\n")).expect("write history");
        }
        println!(
            "logs and each worker's operations kept in {}",
            tmp.path().display()
        );
        std::mem::forget(tmp);
    }
    Summary {
        line,
        failures: report.failures,
    }
}
