//! SIGKILL of the client daemon or the server right after replies: every acknowledged
//! change is found after restart, and nothing is applied twice.

use crate::support::codetta_binary;
use crate::support::nfs::Nfs;
use codetta_cluster::ProcCluster;
use nfs3_client::nfs3_types::nfs3::*;
use std::time::{Duration, Instant};

/// Servers and a client daemon as separate processes, in a temporary directory.
pub(crate) struct Procs {
    inner: ProcCluster,
    _tmp: tempfile::TempDir,
}

impl std::ops::Deref for Procs {
    type Target = ProcCluster;
    fn deref(&self) -> &ProcCluster {
        &self.inner
    }
}

impl std::ops::DerefMut for Procs {
    fn deref_mut(&mut self) -> &mut ProcCluster {
        &mut self.inner
    }
}

impl Procs {
    /// One server (the durability tests of the single-replica path).
    pub(crate) async fn start() -> Procs {
        Self::start_replicated(1).await
    }

    /// `n` servers holding replicas of the root volume, and the client.
    pub(crate) async fn start_replicated(n: usize) -> Procs {
        Self::start_replicated_with(n, None).await
    }

    /// Like [`Procs::start_replicated`], with `setting` added to every server's
    /// configuration.
    pub(crate) async fn start_replicated_with(n: usize, setting: Option<&str>) -> Procs {
        let tmp = tempfile::tempdir().expect("tempdir");
        let settings: Vec<&str> = setting.into_iter().collect();
        let inner = ProcCluster::start(codetta_binary(), tmp.path(), n, &settings)
            .await
            .expect("cluster starts");
        Procs { inner, _tmp: tmp }
    }

    pub(crate) async fn start_server(&mut self, i: usize) {
        self.servers.start(i).await.expect("server starts");
    }

    pub(crate) async fn start_client(&mut self) {
        self.inner.start_client().await.expect("client starts");
    }

    pub(crate) fn client_pid(&self) -> u32 {
        self.inner.client_pid().unwrap_or(0)
    }

    pub(crate) fn kill_server(&mut self, i: usize) {
        self.servers.kill(i);
    }

    pub(crate) async fn nfs(&self) -> Nfs {
        Nfs::connect(self.layout.nfs_port).await.expect("mount")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_killed_after_replies_loses_nothing() {
    let mut p = Procs::start().await;
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "d").await.expect("mkdir");
    let f = nfs.create(&d, "f").await.expect("create");
    let data: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    // UNSTABLE writes are acknowledged from the client's log; the COMMIT reply promises them.
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        nfs.write(&f, (i as u64) << 20, chunk, stable_how::UNSTABLE)
            .await
            .expect("write");
    }
    nfs.commit(&f).await.expect("commit");
    // An UNSTABLE write with no COMMIT, then an update of its file: the held write is
    // logged (and shipped) before the update, which is answered only once applied.
    let g = nfs.create(&d, "g").await.expect("create");
    nfs.write(&g, 0, b"logged first", stable_how::UNSTABLE)
        .await
        .expect("write");
    nfs.rename(&d, "g", &d, "g2").await.expect("rename g");
    nfs.rename(&d, "f", &root, "moved").await.expect("rename");
    drop(nfs);
    p.kill_client();
    p.start_client().await;
    let mut nfs = p.nfs().await;
    let moved = nfs.lookup(&root, "moved").await.expect("renamed file");
    assert_eq!(moved, f, "same handle after restart");
    assert_eq!(nfs.read_all(&moved).await.expect("read"), data);
    assert_eq!(nfs.read_all(&g).await.expect("read g"), b"logged first");
    assert_eq!(nfs.lookup(&d, "f").await, Err(nfsstat3::NFS3ERR_NOENT));
}

/// Writes `data` UNSTABLE in 256 KiB pieces, as the kernel does before a COMMIT; the
/// verifier the replies carried (all the same).
async fn write_unstable(nfs: &mut Nfs, f: &nfs_fh3, data: &[u8]) -> writeverf3 {
    let mut verifier = None;
    for (i, chunk) in data.chunks(256 << 10).enumerate() {
        let r = nfs
            .write(f, (i as u64) << 18, chunk, stable_how::UNSTABLE)
            .await
            .expect("write");
        assert_eq!(r.committed, stable_how::UNSTABLE);
        assert!(
            verifier.is_none_or(|v| v == r.verf),
            "one verifier per start"
        );
        verifier = Some(r.verf);
    }
    verifier.expect("at least one write")
}

/// UNSTABLE writes are held in memory until COMMIT (RFC 1813). A daemon SIGKILLed before
/// the COMMIT loses them, and says so: its verifier is new, so a client sends them again
/// (as the kernel does) and the file is whole. With the verifier held fixed the same
/// crash goes unnoticed and the file reads short: the loss the per-start verifier
/// prevents. Run `CODETTA_VERIFIER_RUNS` times (default 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_before_commit_gets_its_writes_again() {
    let runs: usize = std::env::var("CODETTA_VERIFIER_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut p = Procs::start().await;
    // More than one run of held writes (`RELEASE_RUN`, 4 MiB): the first run is logged
    // and shipped before the COMMIT, the rest is held when the daemon dies.
    let data: Vec<u8> = (0..6 << 20).map(|i| (i * 7 % 253) as u8).collect();
    for run in 0..runs {
        let mut nfs = p.nfs().await;
        let root = nfs.root.clone();
        let f = nfs.create(&root, &format!("f{run}")).await.expect("create");
        let before = write_unstable(&mut nfs, &f, &data).await;
        drop(nfs);
        p.kill_client();
        p.start_client().await;
        let mut nfs = p.nfs().await;
        let after = nfs.commit_verifier(&f).await.expect("commit");
        assert_ne!(after, before, "run {run}: a new start has a new verifier");
        // What a client does on a changed verifier: every write since its last COMMIT
        // again, then COMMIT.
        assert_eq!(write_unstable(&mut nfs, &f, &data).await, after);
        assert_eq!(nfs.commit_verifier(&f).await.expect("commit"), after);
        assert_eq!(nfs.read_all(&f).await.expect("read"), data, "run {run}");
    }

    // The same crash with the verifier held fixed: the client cannot tell.
    p.layout
        .add_client_setting("fixed_write_verifier = true")
        .expect("setting");
    p.kill_client();
    p.start_client().await;
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "fixed").await.expect("create");
    let before = write_unstable(&mut nfs, &f, &data).await;
    drop(nfs);
    p.kill_client();
    p.start_client().await;
    let mut nfs = p.nfs().await;
    assert_eq!(nfs.commit_verifier(&f).await.expect("commit"), before);
    let read = nfs.read_all(&f).await.expect("read");
    assert_ne!(
        read, data,
        "with a fixed verifier the crash loses the writes"
    );
    println!(
        "fixed verifier: {} of {} bytes survived the crash",
        read.len(),
        data.len()
    );
}

/// A COMMIT answers for every UNSTABLE write of its file, those still held and those already
/// on their way into the log: once it returns, the bytes are on the servers. Checked by
/// SIGKILLing the daemon right after the COMMIT and deleting its modify log before the
/// restart, so only what the servers hold is read back. The daemon's appender waits 300 ms
/// before each append (`test_append_delay_ms`), so the 4 MiB runs sent to the log while
/// the file is written are still on their way at the COMMIT (a COMMIT that answered
/// without them lost them here). Three runs each of 8 MiB (two runs, nothing left held:
/// the COMMIT has only writes on their way to wait for) and 9 MiB (a held tail too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_answers_for_every_write_before_it() {
    let mut p = Procs::start().await;
    p.layout
        .add_client_setting("test_append_delay_ms = 300")
        .expect("setting");
    p.kill_client();
    p.start_client().await;
    let log_dir = p.layout.dir.join("client");
    for run in 0..6 {
        let len = if run % 2 == 0 { 8 << 20 } else { 9 << 20 };
        let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
        let mut nfs = p.nfs().await;
        let root = nfs.root.clone();
        let f = nfs.create(&root, &format!("c{run}")).await.expect("create");
        write_unstable(&mut nfs, &f, &data).await;
        nfs.commit(&f).await.expect("commit");
        drop(nfs);
        p.kill_client();
        std::fs::remove_dir_all(&log_dir).expect("remove the modify log");
        p.start_client().await;
        let mut nfs = p.nfs().await;
        assert_eq!(nfs.read_all(&f).await.expect("read"), data, "run {run}");
    }
}

/// Held UNSTABLE writes never take the whole of the modify log's capacity: with a 1 MiB
/// log, 600 small writes spread over 20 files (none reaching a 4 MiB run, none committed)
/// are all answered at once, never JUKEBOX (a 4 KiB write holds 8 KiB of capacity: counted
/// by its data alone, the held writes filled the log while under their limit, and every
/// later call of the volume waited in vain). Then every file is committed and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_writes_never_fill_the_log() {
    let mut p = Procs::start().await;
    p.layout
        .add_client_setting("log_max_bytes = 1048576")
        .expect("setting");
    p.kill_client();
    p.start_client().await;
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let mut files = Vec::new();
    for i in 0..20 {
        files.push(nfs.create(&root, &format!("h{i}")).await.expect("create"));
    }
    let block = |i: usize| vec![(i % 251) as u8; 4096];
    for i in 0..600 {
        let f = &files[i % files.len()];
        let offset = (i / files.len()) as u64 * 4096;
        let r = nfs
            .write(f, offset, &block(i), stable_how::UNSTABLE)
            .await
            .unwrap_or_else(|e| panic!("write {i}: {e:?}"));
        assert_eq!(r.committed, stable_how::UNSTABLE);
    }
    for (k, f) in files.iter().enumerate() {
        nfs.commit(f).await.expect("commit");
        let got = nfs.read_all(f).await.expect("read");
        let want: Vec<u8> = (0..30).flat_map(|j| block(j * files.len() + k)).collect();
        assert_eq!(got, want, "file {k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_after_replies_loses_nothing() {
    let mut p = Procs::start().await;
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "f").await.expect("create");
    nfs.write(&f, 0, b"committed", stable_how::UNSTABLE)
        .await
        .expect("write");
    nfs.commit(&f).await.expect("commit");
    let d = nfs.mkdir(&root, "dir").await.expect("mkdir");
    nfs.symlink(&d, "l", "../f").await.expect("symlink");
    nfs.remove(&root, "f").await.expect("remove");
    p.kill_server(0);
    p.start_server(0).await;
    // The client reconnects by itself; calls answer JUKEBOX until the server is back.
    let deadline = Instant::now() + Duration::from_secs(20);
    let l = loop {
        match nfs.lookup(&d, "l").await {
            Ok(l) => break l,
            Err(nfsstat3::NFS3ERR_JUKEBOX) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("lookup after server restart: {e}"),
        }
    };
    assert_eq!(nfs.readlink(&l).await.expect("readlink"), b"../f");
    assert_eq!(nfs.lookup(&root, "f").await, Err(nfsstat3::NFS3ERR_NOENT));
    assert_eq!(
        nfs.getattr(&f).await.map(|_| ()),
        Err(nfsstat3::NFS3ERR_STALE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_server_is_noticed_fast_and_work_resumes() {
    let mut p = Procs::start().await;
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "f").await.expect("create");
    p.kill_server(0);
    let started = Instant::now();
    let status = nfs
        .write(&f, 0, b"while down", stable_how::FILE_SYNC)
        .await
        .map(|_| ());
    let waited = started.elapsed();
    assert!(
        matches!(
            status,
            Err(nfsstat3::NFS3ERR_JUKEBOX | nfsstat3::NFS3ERR_IO)
        ),
        "{status:?}"
    );
    assert!(waited < Duration::from_secs(5), "noticed after {waited:?}");
    p.start_server(0).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match nfs.write(&f, 0, b"after", stable_how::FILE_SYNC).await {
            Ok(_) => break,
            Err(nfsstat3::NFS3ERR_JUKEBOX) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("write after restart: {e}"),
        }
    }
    // The write answered JUKEBOX while the server was down either never started (the
    // client could not learn the file's attributes) or lands in its place in the log,
    // before the later write, as the kernel's retry of it would have.
    let data = nfs.read_all(&f).await.expect("read");
    assert!(
        data == b"after" || data == b"after down",
        "{:?}",
        String::from_utf8_lossy(&data)
    );
}
