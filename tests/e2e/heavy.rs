//! Heavy checks, not run by default (`cargo test --release --test e2e -- --ignored
//! --nocapture heavy`): memory stays bounded while a 2 GiB file is written and read.

use crate::durability::Procs;
use nfs3_client::nfs3_types::nfs3::*;

/// Peak resident set of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: 2 GiB through the endpoint"]
async fn heavy_2_gib_file_keeps_memory_bounded() {
    const MIB: u64 = 1 << 20;
    const SIZE: u64 = 2048 * MIB;
    let p = Procs::start().await;
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "big").await.expect("create");
    let mut written = blake3::Hasher::new();
    let started = std::time::Instant::now();
    for i in 0..SIZE / MIB {
        let data: Vec<u8> = (0..MIB).map(|j| ((i * 31 + j) % 251) as u8).collect();
        written.update(&data);
        nfs.write(&f, i * MIB, &data, stable_how::UNSTABLE)
            .await
            .expect("write");
    }
    nfs.commit(&f).await.expect("commit");
    let write_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let mut read = blake3::Hasher::new();
    let n = nfs
        .read_each(&f, |d| {
            read.update(d);
        })
        .await
        .expect("read");
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(n, SIZE);
    assert_eq!(read.finalize(), written.finalize());
    let client = peak_rss_kib(p.client_pid());
    let server = peak_rss_kib(p.server_pid());
    println!(
        "2 GiB: write {:.0} MiB/s, read {:.0} MiB/s; peak RSS client {} MiB, server {} MiB",
        2048.0 / write_secs,
        2048.0 / read_secs,
        client / 1024,
        server / 1024
    );
    assert!(client < 256 * 1024, "client peak RSS {client} KiB");
    assert!(server < 256 * 1024, "server peak RSS {server} KiB");
}
