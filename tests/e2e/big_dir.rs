//! A directory of 100k entries, listed with READDIRPLUS cookies across a restart of the
//! client daemon and concurrent inserts.

use crate::support::Cluster;
use crate::support::nfs::Nfs;
use std::collections::HashSet;

const CREATORS: usize = 16;

/// 100k unless `CODETTA_BIG_DIR_ENTRIES` says otherwise (for profiling).
fn entries() -> usize {
    std::env::var("CODETTA_BIG_DIR_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_entry_directory_lists_across_a_daemon_restart() {
    let mut cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let dir = nfs.mkdir(&root, "big").await.expect("mkdir");
    let port = cluster.nfs_port();
    let entries = entries();
    let started = std::time::Instant::now();
    let mut creators = Vec::new();
    for c in 0..CREATORS {
        let dir = dir.clone();
        creators.push(tokio::spawn(async move {
            let mut nfs = Nfs::connect(port).await.expect("mount");
            for i in (c..entries).step_by(CREATORS) {
                nfs.create(&dir, &format!("entry-{i:06}"))
                    .await
                    .unwrap_or_else(|e| panic!("create {i}: {e}"));
            }
        }));
    }
    for creator in creators {
        creator.await.expect("creator");
    }
    println!(
        "{entries} creates in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // List about half, restart the client daemon, and continue from the last cookie.
    let mut seen = Vec::with_capacity(entries);
    let mut cookie = 0;
    while seen.len() < entries / 2 {
        let (page, eof) = nfs
            .readdirplus(&dir, cookie, 32 * 1024)
            .await
            .expect("page");
        assert!(!eof, "listing ended early at {}", seen.len());
        cookie = page.last().map(|(_, c)| *c).expect("non-empty page");
        seen.extend(page.into_iter().map(|(n, _)| n));
    }
    drop(nfs);
    cluster.stop_client().await;
    cluster.start_client().await;
    let mut nfs = cluster.nfs().await;
    // Concurrent inserts between pages do not disturb the listing: cookies are a pure
    // function of the name.
    for i in 0..20 {
        nfs.create(&dir, &format!("late-{i}"))
            .await
            .expect("insert");
    }
    loop {
        let (page, eof) = nfs
            .readdirplus(&dir, cookie, 32 * 1024)
            .await
            .expect("page");
        if let Some((_, c)) = page.last() {
            cookie = *c;
        }
        seen.extend(page.into_iter().map(|(n, _)| n));
        if eof {
            break;
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no entry twice");
    let originals = seen.iter().filter(|n| n.starts_with("entry-")).count();
    assert_eq!(originals, entries, "every original entry exactly once");
    assert!(unique.contains(&format!("entry-{:06}", entries - 1)));
    cluster.shutdown().await;
}
