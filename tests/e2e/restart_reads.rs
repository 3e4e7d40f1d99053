//! Reads right after a whole cluster restarts while one replica is stale (issue 19): the
//! stale replica is being brought up by resolution (attributes first, then blocks in
//! pieces, then its version) while the client reads, and no read may return bytes that no
//! acknowledged write put there.

use crate::durability::Procs;
use crate::support::nfs::{Fh, Nfs};
use nfs3_client::nfs3_types::nfs3::*;

const MIB: usize = 1 << 20;
const FILE_MIB: usize = 16;

/// `FILE_MIB` MiB of bytes that depend only on `seed` (no run repeats another's).
fn content(seed: &str) -> Vec<u8> {
    let mut out = vec![0u8; FILE_MIB * MIB];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

async fn write_file(nfs: &mut Nfs, dir: &Fh, name: &str, data: &[u8]) -> Fh {
    let f = nfs.create(dir, name).await.expect("create");
    for (i, piece) in data.chunks(MIB).enumerate() {
        nfs.write(&f, (i * MIB) as u64, piece, stable_how::UNSTABLE)
            .await
            .expect("write");
    }
    nfs.commit(&f).await.expect("commit");
    f
}

/// Reads `fh` whole and says how it differs from `want`, if it does.
async fn check_read(nfs: &mut Nfs, fh: &Fh, name: &str, want: &[u8]) -> Option<String> {
    match nfs.read_all(fh).await {
        Ok(got) if got.len() != want.len() => Some(format!(
            "{name}: {} bytes read, {} written",
            got.len(),
            want.len()
        )),
        Ok(got) => difference(&got, want).map(|(first, differ, zeros)| {
            format!(
                "{name}: wrong bytes from offset {first}: {differ} of 256 blocks differ, \
                 {zeros} of them zeros"
            )
        }),
        Err(e) => Some(format!("read {name}: {e:?}")),
    }
}

/// Where the bytes read differ from the expected ones: (first differing offset, how many
/// of the 64 KiB blocks differ, how many of those read as zeros).
fn difference(got: &[u8], want: &[u8]) -> Option<(usize, usize, usize)> {
    if got == want {
        return None;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let blocks = got.chunks(64 << 10).zip(want.chunks(64 << 10));
    let (mut differ, mut zeros) = (0, 0);
    for (g, w) in blocks {
        if g != w {
            differ += 1;
            if g.iter().all(|b| *b == 0) {
                zeros += 1;
            }
        }
    }
    Some((first, differ, zeros))
}

/// Healing waits this long before each piece of file data it installs (a test hook), so
/// that the client's first reads land while s1 holds files between their attributes and
/// their data.
const INSTALL_DELAY: &str = "test_install_delay_ms = 1000";

/// One run of the scenario; an error says which file read wrong and how. Even runs open
/// the files by name first (LOOKUP, then READ), odd runs read the new `a` through the
/// handle its writer got before the restart first.
async fn one_run(run: usize) -> Result<(), String> {
    let mut p = Procs::start_replicated_with(3, Some(INSTALL_DELAY)).await;
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let seed = format!("{run}-{}", std::process::id());
    let (a1, b, c) = (
        content(&format!("a1 {seed}")),
        content(&format!("b {seed}")),
        content(&format!("c {seed}")),
    );
    write_file(&mut nfs, &root, "a", &a1).await;
    write_file(&mut nfs, &root, "b", &b).await;
    write_file(&mut nfs, &root, "c", &c).await;
    p.kill_server(0);
    let (a2, d) = (
        content(&format!("a2 {seed}")),
        content(&format!("d {seed}")),
    );
    nfs.remove(&root, "a").await.expect("remove a");
    let a_handle = write_file(&mut nfs, &root, "a", &a2).await;
    write_file(&mut nfs, &root, "d", &d).await;
    nfs.remove(&root, "c").await.expect("remove c");
    drop(nfs);
    // The whole cluster stops and starts again on the same directory, as `codetta up`
    // does; s1 comes back stale and is resolved while the client reads.
    p.stop();
    p.servers.start_all().await.expect("servers start");
    p.start_client().await;
    let mut nfs = p.nfs().await;
    let mut failures = Vec::new();
    let by_handle = run % 2 == 1;
    if by_handle {
        // Through the handle the writer got (handles survive restarts): the file's data is
        // read at once, while s1 may be receiving it.
        failures.extend(check_read(&mut nfs, &a_handle, "a (its handle)", &a2).await);
    }
    // By name, as a program opening the files would.
    for (name, want) in [("a", &a2), ("b", &b), ("d", &d)] {
        match nfs.lookup(&root, name).await {
            Ok(fh) => failures.extend(check_read(&mut nfs, &fh, name, want).await),
            Err(e) => failures.push(format!("lookup {name}: {e:?}")),
        }
    }
    if !by_handle {
        failures.extend(check_read(&mut nfs, &a_handle, "a (its handle)", &a2).await);
    }
    if nfs.lookup(&root, "c").await != Err(nfsstat3::NFS3ERR_NOENT) {
        failures.push("c is back".into());
    }
    drop(nfs);
    p.stop();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Issue 19's scenario, run `CODETTA_RESTART_RUNS` times (default 2: one of each order):
/// every file read right after the restart has exactly the bytes last written to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_right_after_a_restart_return_what_was_written() {
    let runs: usize = std::env::var("CODETTA_RESTART_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut failed = Vec::new();
    for run in 0..runs {
        let started = std::time::Instant::now();
        let outcome = one_run(run).await;
        eprintln!(
            "run {run}: {} in {:.1} s",
            match &outcome {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("FAILED: {e}"),
            },
            started.elapsed().as_secs_f64()
        );
        if let Err(e) = outcome {
            failed.push(format!("run {run}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {runs} runs read wrong: {failed:#?}",
        failed.len()
    );
}
