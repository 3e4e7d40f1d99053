//! `codetta up` as a user runs it: the servers it starts end when it ends, however it ends
//! (issue 20: SIGKILLed or killed by the OOM killer, it left them running).

use crate::support::{codetta_binary, wait_for_tcp};
use std::time::{Duration, Instant};

/// Processes whose command line holds `needle`, with their state letter (`Z`: a zombie
/// waiting for a parent to reap it, as good as gone).
fn processes_with(needle: &str) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        let state = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit(") ").next().and_then(|rest| rest.chars().next()))
            .unwrap_or('?');
        out.push((pid, state));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_of_up_end_when_up_is_killed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    let nfs_port = codetta_cluster::free_port().expect("port");
    let server_port = codetta_cluster::free_port().expect("port");
    let mut up = std::process::Command::new(codetta_binary())
        .args([
            "up",
            "--dir",
            &dir.display().to_string(),
            "--servers",
            "1",
            "--nfs-port",
            &nfs_port.to_string(),
            "--server-port",
            &server_port.to_string(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start codetta up");
    wait_for_tcp(nfs_port).await;
    let config = dir.join("s1.toml").display().to_string();
    let live = |procs: Vec<(u32, char)>| procs.into_iter().filter(|(_, s)| *s != 'Z').count();
    assert_eq!(live(processes_with(&config)), 1, "up runs its server");
    // SIGKILL: up has no chance to stop anything itself.
    up.kill().expect("kill up");
    up.wait().expect("reap up");
    let deadline = Instant::now() + Duration::from_secs(15);
    while live(processes_with(&config)) > 0 {
        assert!(
            Instant::now() < deadline,
            "the server outlived up: {:?}",
            processes_with(&config)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
