//! The client daemon's NFS port against what any local user can send (issue 20): garbage
//! and idle connections leave it serving, within its memory bounds, while a real client's
//! reads and writes go on; calls from unprivileged source ports are refused by default.
//! The daemon runs as its own process, so its memory is its own (`VmRSS`).

use crate::support::codetta_binary;
use crate::support::nfs::{Fh, Nfs};
use codetta_client::front::port::PortLimits;
use codetta_cluster::ProcCluster;
use nfs3_client::nfs3_types::nfs3::stable_how;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A small deterministic generator (splitmix64): a failing run replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What one garbage connection sends, the three kinds of the run: random bytes; a
/// record mark claiming up to 2 GiB and a little garbage; a well-formed RPC call header
/// (NFS or MOUNT, AUTH_SYS uid 0) with a random procedure and a random body.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    match rng.below(3) {
        0 => {
            let n = 1 + rng.below(4096) as usize;
            rng.bytes(n)
        }
        1 => {
            let claimed = rng.below(2 << 30) as u32 | (rng.below(2) as u32) << 31;
            let mut out = claimed.to_be_bytes().to_vec();
            let n = rng.below(64) as usize;
            out.extend(rng.bytes(n));
            out
        }
        _ => {
            let prog: u32 = if rng.below(2) == 0 { 100_003 } else { 100_005 };
            let (xid, proc) = (rng.next() as u32, rng.below(25) as u32);
            let n = rng.below(2048) as usize;
            call_bytes(xid, prog, 3, proc, &rng.bytes(n))
        }
    }
}

/// The client daemon's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples `pid`'s RSS every 20 ms until `stop`; the peak.
fn watch_rss(pid: u32, stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !*stop.borrow() {
            peak = peak.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    })
}

/// Writes `len` bytes of a pattern made from `seed` to `name` in 256 KiB FILE_SYNC
/// writes, and reads them back: every byte must be the one written.
async fn write_and_check(nfs: &mut Nfs, root: &Fh, name: &str, seed: u64, len: usize) {
    let data = Rng(seed).bytes(len);
    let f = nfs
        .create(root, name)
        .await
        .expect("create during the flood");
    for (i, piece) in data.chunks(256 << 10).enumerate() {
        nfs.write(&f, (i * (256 << 10)) as u64, piece, stable_how::FILE_SYNC)
            .await
            .expect("write during the flood");
    }
    let back = nfs.read_all(&f).await.expect("read during the flood");
    assert!(back == data, "{name}: the bytes read back differ");
}

/// File data the daemon caches in these tests, in MiB: small, so that what the RSS shows
/// beyond it is the port's.
const CACHE_MIB: u64 = 8;

async fn cluster(privileged_only: bool) -> (ProcCluster, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ports = format!("require_privileged_port = {privileged_only}");
    let cache = format!("cache_mib = {CACHE_MIB}");
    let cluster =
        ProcCluster::start_with_client(codetta_binary(), tmp.path(), 1, &[], &[&ports, &cache])
            .await
            .expect("cluster starts");
    (cluster, tmp)
}

/// The garbage run, bounded: waves of 300 connections from unprivileged ports to a
/// daemon that takes them (so every byte reaches the record reader and the decoders), each
/// sending one kind of garbage and staying open, while a client connected before writes
/// and reads back 8 MiB per wave. The daemon stays up, its RSS within its bounds, and a
/// new client connects once the garbage is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_nfs_port_leaves_the_daemon_serving_within_its_bounds() {
    let waves: u64 = std::env::var("CODETTA_GARBAGE_WAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let (mut cluster, _tmp) = cluster(false).await;
    let port = cluster.layout.nfs_port;
    let pid = cluster.client_pid().expect("client pid");
    let mut nfs = Nfs::connect(port).await.expect("mount before the flood");
    let root = nfs.root.clone();
    write_and_check(&mut nfs, &root, "before", 1, 1 << 20).await;
    let before = rss_kib(pid);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let peak = watch_rss(pid, stop_rx);
    let started = Instant::now();
    let mut sent = 0usize;
    for wave in 0..waves {
        let mut open = Vec::new();
        let mut rng = Rng(wave);
        for _ in 0..300 {
            let bytes = garbage(&mut rng);
            sent += bytes.len();
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                // A closed connection (the bound reached, a record refused) is the point.
                let _ = s.write_all(&bytes).await;
                open.push(s);
            }
        }
        write_and_check(
            &mut nfs,
            &root,
            &format!("wave-{wave}"),
            100 + wave,
            8 << 20,
        )
        .await;
        drop(open);
    }
    let _ = stop_tx.send(true);
    let peak = peak.await.expect("rss watcher");
    assert!(
        !cluster.client_exited(),
        "the client daemon ended during the flood"
    );
    let bound_kib =
        (PortLimits::for_writes_of(1 << 20).memory_bound() / 1024) as u64 + CACHE_MIB * 1024;
    println!(
        "garbage: {waves} waves of 300 connections, {sent} bytes sent in {:?}; client RSS {before} KiB before, peak {peak} KiB (the port's bound and the {CACHE_MIB} MiB cache: {bound_kib} KiB above the start)",
        started.elapsed()
    );
    assert!(
        peak < before + bound_kib,
        "RSS peaked at {peak} KiB, past {before} + {bound_kib} KiB"
    );
    refusals_leave_the_connection_open(port).await;
    // Every file is whole, read by a client that connects after the flood.
    let mut fresh = Nfs::connect(port)
        .await
        .expect("a new client mounts after the flood");
    let root = fresh.root.clone();
    for wave in 0..waves {
        let f = fresh
            .lookup(&root, &format!("wave-{wave}"))
            .await
            .expect("lookup");
        let back = fresh.read_all(&f).await.expect("read");
        assert!(
            back == Rng(100 + wave).bytes(8 << 20),
            "wave-{wave} differs"
        );
    }
    cluster.stop();
}

/// Whether this process may bind privileged ports.
fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Raises this process's open-file limit to at least `n` (up to the hard limit).
fn allow_open_files(n: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < n) {
        let wanted = Rlimit {
            current: Some(limit.maximum.map_or(n, |m| n.min(m))),
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, wanted);
    }
}

/// A call with AUTH_SYS uid 0 to `prog`, version `vers`, procedure `proc`, with `args`.
fn call_bytes(xid: u32, prog: u32, vers: u32, proc: u32, args: &[u8]) -> Vec<u8> {
    let mut call = Vec::new();
    for word in [xid, 0, 2, prog, vers, proc, 1, 24, 0, 1] {
        call.extend(word.to_be_bytes());
    }
    call.extend(b"x\0\0\0");
    for word in [0u32, 0, 0, 0, 0] {
        call.extend(word.to_be_bytes());
    }
    call.extend(args);
    let mut out = ((call.len() as u32) | 1 << 31).to_be_bytes().to_vec();
    out.extend(call);
    out
}

/// Sends `call` on `s`; the first words of the reply (up to 1 KiB of it).
async fn exchange(s: &mut TcpStream, call: &[u8]) -> Vec<u32> {
    s.write_all(call).await.expect("send");
    let mut mark = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut mark))
        .await
        .expect("a reply in time")
        .expect("a reply");
    let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.expect("the reply's body");
    body.truncate(1024);
    body.chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// One call the port refuses: xid, program, version, procedure, arguments; the accept
/// status and its details; what it shows.
type Refusal = (
    u32,
    u32,
    u32,
    u32,
    &'static [u8],
    &'static [u32],
    &'static str,
);

/// Calls the port cannot carry out are answered with the RPC's own refusals and the
/// connection goes on: arguments that do not decode, a procedure, a version and a program
/// it does not have; then a NULL call on the same connection is answered.
async fn refusals_leave_the_connection_open(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // (xid, program, version, procedure, arguments), then the reply: xid, reply, accepted,
    // AUTH_NONE verifier (flavor, length), the accept status and its details.
    let cases: [Refusal; 5] = [
        (
            1,
            100_003,
            3,
            1,
            &[0, 0, 0, 200, 1, 2],
            &[4],
            "GARBAGE_ARGS",
        ),
        (2, 100_003, 3, 99, &[], &[3], "PROC_UNAVAIL"),
        (3, 100_003, 2, 0, &[], &[2, 3, 3], "PROG_MISMATCH"),
        (4, 100_021, 4, 0, &[], &[1], "PROG_UNAVAIL"),
        (5, 100_003, 3, 0, &[], &[0], "NULL answered"),
    ];
    for (xid, prog, vers, proc, args, status, what) in cases {
        let mut expected = vec![xid, 1, 0, 0, 0];
        expected.extend_from_slice(status);
        let reply = exchange(&mut s, &call_bytes(xid, prog, vers, proc, args)).await;
        assert_eq!(reply, expected, "{what}");
    }
}

/// One NULL call with AUTH_SYS uid 0 on `s`; the reply's words.
async fn null_call_as_root(s: &mut TcpStream) -> Vec<u32> {
    exchange(s, &call_bytes(7, 100_003, 3, 0, &[])).await
}

/// With the daemon's defaults: a call claiming uid 0 from an unprivileged port is refused
/// (AUTH_TOOWEAK), and mounting from one fails; from a privileged port (as the kernel's
/// client connects) it is served. Then 2,000 connections from unprivileged ports that
/// send nothing (`CODETTA_IDLE_CONNECTIONS` for more) keep no client out: the one
/// connected before goes on, and a new one connects and writes during the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprivileged_ports_are_refused_and_idle_connections_keep_no_client_out() {
    if !root() {
        // Binding a privileged source port needs root (CI runs as root).
        println!("skipped: this test binds privileged source ports and needs root");
        return;
    }
    let idle: u64 = std::env::var("CODETTA_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    allow_open_files(idle + 1024);
    let (mut cluster, _tmp) = cluster(true).await;
    let port = cluster.layout.nfs_port;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let pid = cluster.client_pid().expect("client pid");

    let mut s = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(
        null_call_as_root(&mut s).await,
        vec![7, 1, 1, 1, 5],
        "xid 7, a reply, denied, AUTH_ERROR, AUTH_TOOWEAK"
    );
    drop(s);
    let refused = Nfs::connect_to(addr, 0, 0).await;
    assert!(
        refused.is_err(),
        "a mount from an unprivileged port went through"
    );

    let mut nfs = Nfs::connect_privileged(addr, 0, 0)
        .await
        .expect("mount from a privileged port");
    let root_dir = nfs.root.clone();
    write_and_check(&mut nfs, &root_dir, "root-owned", 2, 1 << 20).await;

    let before = rss_kib(pid);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let peak = watch_rss(pid, stop_rx);
    let started = Instant::now();
    let mut open = Vec::new();
    for _ in 0..idle {
        match TcpStream::connect(addr).await {
            Ok(s) => open.push(s),
            Err(e) => panic!("connection {} refused by the kernel: {e}", open.len()),
        }
    }
    let opened = started.elapsed();
    write_and_check(&mut nfs, &root_dir, "during-idle", 3, 4 << 20).await;
    let mut late = Nfs::connect_privileged(addr, 0, 0)
        .await
        .expect("a new privileged client connects during the flood");
    write_and_check(&mut late, &root_dir, "late", 4, 4 << 20).await;
    let _ = stop_tx.send(true);
    let peak = peak.await.expect("rss watcher");
    println!(
        "idle: {idle} connections opened in {opened:?}; client RSS {before} KiB before, peak {peak} KiB"
    );
    assert!(
        !cluster.client_exited(),
        "the client daemon ended during the flood"
    );
    drop(open);
    cluster.stop();
}
