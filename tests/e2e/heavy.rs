//! Heavy checks, not run by default (`cargo test --release --test e2e -- --ignored
//! --nocapture heavy`): memory stays bounded while a 2 GiB file is written and read.

use crate::durability::Procs;
use crate::support::stream_round_trip;

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
    let p = Procs::start().await;
    let mut nfs = p.nfs().await;
    let (write_secs, read_secs) = stream_round_trip(&mut nfs, "big", 2048).await;
    let client = peak_rss_kib(p.client_pid());
    let server = peak_rss_kib(p.servers.pid(0).unwrap_or(0));
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
