//! Test support: a local cluster (in-process, or as separate processes for SIGKILL tests)
//! laid out exactly as `codetta up` lays it out, and the bench harness's NFS client.

#![allow(dead_code)]

pub(crate) use codetta_bench::nfs;
pub(crate) mod proxy;
use codetta_cluster::LocalCluster;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::Duration;

/// An in-process cluster in a temporary directory; methods panic on failure (tests only).
pub(crate) struct Cluster {
    inner: LocalCluster,
    _tmp: tempfile::TempDir,
}

impl Deref for Cluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.inner
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.inner
    }
}

impl Cluster {
    /// One server holding the root volume.
    pub(crate) async fn start() -> Cluster {
        Self::start_replicated(1).await
    }

    /// `servers` servers, each holding a replica of the root volume.
    pub(crate) async fn start_replicated(servers: usize) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let inner = LocalCluster::start(tmp.path(), servers)
            .await
            .expect("cluster starts");
        Cluster { inner, _tmp: tmp }
    }

    pub(crate) async fn start_server(&mut self, i: usize) {
        self.inner.start_server(i).await.expect("server starts");
    }

    pub(crate) async fn start_client(&mut self) {
        self.inner.start_client().await.expect("client starts");
    }

    pub(crate) async fn nfs(&self) -> nfs::Nfs {
        nfs::Nfs::connect(self.nfs_port()).await.expect("mount")
    }

    pub(crate) async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// The `codetta` binary under test.
pub(crate) fn codetta_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_codetta"))
}

/// A daemon running as a separate `codetta` process (for SIGKILL tests).
pub(crate) struct Proc(codetta_cluster::Proc);

impl Proc {
    pub(crate) fn spawn(args: &[&str], log: &Path) -> Proc {
        Proc(codetta_cluster::Proc::spawn(codetta_binary(), args, log).expect("spawn codetta"))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// SIGKILL: no chance to flush anything.
    pub(crate) fn kill(&mut self) {
        self.0.kill();
    }
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after `limit`.
pub(crate) async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `port` accepts TCP connections.
pub(crate) async fn wait_for_tcp(port: u16) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port}");
}

/// Streams `mib` MiB of pseudo-random data into a new file `name` in the root (1 MiB
/// UNSTABLE writes, one COMMIT), reads it back in 1 MiB requests and checks that the blake3
/// digests match; returns the seconds spent writing and reading.
pub(crate) async fn stream_round_trip(nfs: &mut nfs::Nfs, name: &str, mib: u64) -> (f64, f64) {
    use nfs3_client::nfs3_types::nfs3::stable_how;
    const MIB: u64 = 1 << 20;
    let root = nfs.root.clone();
    let f = nfs.create(&root, name).await.expect("create");
    let mut written = blake3::Hasher::new();
    let started = std::time::Instant::now();
    for i in 0..mib {
        let data = codetta_bench::workloads::payload(i, MIB as usize);
        written.update(&data);
        nfs.write(&f, i * MIB, &data, stable_how::UNSTABLE)
            .await
            .expect("write");
    }
    nfs.commit(&f).await.expect("commit");
    let write_secs = started.elapsed().as_secs_f64();
    assert_eq!(nfs.getattr(&f).await.expect("attr").size, mib * MIB);
    let started = std::time::Instant::now();
    let mut read = blake3::Hasher::new();
    let n = nfs
        .read_each(&f, |d| {
            read.update(d);
        })
        .await
        .expect("read");
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(n, mib * MIB);
    assert_eq!(
        read.finalize(),
        written.finalize(),
        "read back what was written"
    );
    (write_secs, read_secs)
}

/// Runs `codetta ARGS...` as a user would; its stdout, or a panic with its stderr.
pub(crate) fn run_codetta(args: &[&str]) -> String {
    let out = std::process::Command::new(codetta_binary())
        .args(args)
        .output()
        .expect("run codetta");
    assert!(
        out.status.success(),
        "codetta {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
