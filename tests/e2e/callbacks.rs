//! The client cache with callbacks (rule 15): two client daemons on one cluster, one
//! writing, one reading from its cache; close-to-open between them, with no pause anywhere
//! (a break is delivered before the writer's COMMIT returns), across broken channels and
//! server restarts.

use crate::support::Cluster;
use crate::support::nfs::{Nfs, mode};
use crate::support::proxy::UdpProxy;
use codetta_client::{ClientDaemon, volume_client::VolumeClient};
use codetta_cluster::Layout;
use nfs3_client::nfs3_types::nfs3::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A second client daemon on the cluster, with its own log and NFS port.
struct SecondClient {
    daemon: ClientDaemon,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl SecondClient {
    /// Reaching server `i` at `via[i]` (a proxy) when given.
    async fn start_via(cluster: &Cluster, via: Option<&[UdpProxy]>) -> SecondClient {
        Self::start_on(&cluster.layout, via).await
    }

    /// On the cluster laid out as `layout` (in-process or processes).
    async fn start_on(layout: &Layout, via: Option<&[UdpProxy]>) -> SecondClient {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = layout.client_config().expect("client config");
        for (server, proxy) in config.servers.iter_mut().zip(via.unwrap_or_default()) {
            server.addr = proxy.addr;
        }
        config.data_dir = dir.path().join("client-b");
        config.nfs_listen = "127.0.0.1:0".parse().expect("addr");
        let (stop, rx) = watch::channel(false);
        let daemon = ClientDaemon::start(&config, rx)
            .await
            .expect("second client");
        SecondClient {
            daemon,
            _stop: stop,
            _dir: dir,
        }
    }

    async fn nfs(&self) -> Nfs {
        Nfs::connect(self.daemon.nfs_addr.port())
            .await
            .expect("mount")
    }

    fn volume_client(&self) -> &Arc<VolumeClient> {
        &self.daemon.root_volume
    }

    async fn stop(self) {
        self.daemon.stop().await;
    }
}

/// Waits until `volume_client` holds promises it can answer from (its channels are up).
async fn wait_for_promises(volume_client: &VolumeClient, nfs: &mut Nfs, fh: &nfs_fh3) {
    for _ in 0..200 {
        nfs.getattr(fh).await.expect("getattr");
        let before = volume_client.cache_stats().hits;
        nfs.getattr(fh).await.expect("getattr");
        if volume_client.cache_stats().hits > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the client never answered from its cache");
}

/// A writer (the cluster's client daemon) and a reader (a second daemon, reaching the
/// servers through `via` when given) sharing file `name` in the root, which holds `first`;
/// the reader holds promises on it.
struct Pair {
    b: SecondClient,
    writer: Nfs,
    reader: Nfs,
    root: nfs_fh3,
    f: nfs_fh3,
}

impl Pair {
    async fn start(cluster: &Cluster, via: Option<&[UdpProxy]>, name: &str, first: &[u8]) -> Pair {
        let b = SecondClient::start_via(cluster, via).await;
        let mut writer = cluster.nfs().await;
        let mut reader = b.nfs().await;
        let root = writer.root.clone();
        let f = writer.create(&root, name).await.expect("create");
        write_file(&mut writer, &f, first).await;
        wait_for_promises(b.volume_client(), &mut reader, &f).await;
        assert_eq!(reader.read_all(&f).await.expect("read"), first);
        Pair {
            b,
            writer,
            reader,
            root,
            f,
        }
    }
}

async fn write_file(nfs: &mut Nfs, fh: &nfs_fh3, data: &[u8]) {
    nfs.setattr(
        fh,
        sattr3 {
            size: Nfs3Option::Some(0),
            ..sattr3::default()
        },
    )
    .await
    .expect("truncate");
    nfs.write(fh, 0, data, stable_how::UNSTABLE)
        .await
        .expect("write");
    nfs.commit(fh).await.expect("commit (close)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_to_open_between_two_client_daemons() {
    let cluster = Cluster::start_replicated(3).await;
    // The reader's path back from every server is slow: a break reaches it well after the
    // writer's call would return if the server did not wait for the reader's acknowledgement.
    let mut proxies = Vec::new();
    for server in &cluster.layout.servers {
        proxies.push(UdpProxy::start(server.addr()).await);
    }
    let Pair {
        b,
        mut writer,
        mut reader,
        root,
        f,
    } = Pair::start(&cluster, Some(&proxies), "shared", b"version 0").await;
    for proxy in &proxies {
        proxy.set_delay(Duration::from_millis(25));
    }

    for round in 1..=20u32 {
        // The reader fetches everything, then reads it again: the second time from its cache.
        let seen = reader.read_all(&f).await.expect("read");
        assert_eq!(seen, format!("version {}", round - 1).as_bytes());
        let before = b.volume_client().cache_stats();
        assert_eq!(reader.read_all(&f).await.expect("read"), seen);
        let after = b.volume_client().cache_stats();
        assert!(
            after.data_hits > before.data_hits,
            "round {round}: data not from the cache"
        );
        assert_eq!(
            reader.getattr(&f).await.expect("attr").size,
            seen.len() as u64
        );
        assert_eq!(reader.lookup(&root, "shared").await.expect("lookup"), f);
        let last = b.volume_client().cache_stats();
        assert!(
            last.hits >= after.hits + 2,
            "round {round}: GETATTR and LOOKUP not from the cache"
        );
        // The other client changes it and closes; the reader opens it again at once.
        let data = format!("version {round}{}", "+".repeat(round as usize % 3));
        write_file(&mut writer, &f, data.as_bytes()).await;
        let data = data.into_bytes();
        assert_eq!(
            reader.getattr(&f).await.expect("attr").size,
            data.len() as u64,
            "round {round}: stale attributes after the writer's close"
        );
        assert_eq!(
            reader.read_all(&f).await.expect("read"),
            data,
            "round {round}: stale data after the writer's close"
        );
        write_file(&mut writer, &f, format!("version {round}").as_bytes()).await;
    }

    // Names: a cached "no such name" goes when another client creates it, and a cached
    // name when it is removed; attributes set elsewhere show at once.
    assert_eq!(
        reader.lookup(&root, "later").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(
        reader.lookup(&root, "later").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    let later = writer.create(&root, "later").await.expect("create");
    assert_eq!(reader.lookup(&root, "later").await.expect("lookup"), later);
    reader.getattr(&later).await.expect("attr");
    writer.setattr(&later, mode(0o600)).await.expect("chmod");
    assert_eq!(reader.getattr(&later).await.expect("attr").mode, 0o600);
    writer.remove(&root, "later").await.expect("remove");
    assert_eq!(
        reader.lookup(&root, "later").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    // The reader's own changes show to itself and to the writer.
    write_file(&mut reader, &f, b"from the reader").await;
    assert_eq!(reader.read_all(&f).await.expect("read"), b"from the reader");
    assert_eq!(writer.read_all(&f).await.expect("read"), b"from the reader");
    b.stop().await;
    cluster.shutdown().await;
}

/// A client caches what it changed from the replicas' answers to its own batches: after
/// CREATE, WRITE and COMMIT it asks no server for the new file's or the directory's
/// attributes, nor for the new name. The promises behind that cache hold like any other: another client's change
/// shows to it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_caches_what_it_changed_and_still_sees_others_changes() {
    let cluster = Cluster::start_replicated(3).await;
    let a = SecondClient::start_via(&cluster, None).await;
    let b = SecondClient::start_via(&cluster, None).await;
    let mut writer = a.nfs().await;
    let mut other = b.nfs().await;
    let root = writer.root.clone();
    wait_for_promises(a.volume_client(), &mut writer, &root).await;
    for round in 0..5u32 {
        let name = format!("mine-{round}");
        let f = writer.create(&root, &name).await.expect("create");
        let data = format!("written by the writer, round {round}");
        writer
            .write(&f, 0, data.as_bytes(), stable_how::UNSTABLE)
            .await
            .expect("write");
        writer.commit(&f).await.expect("commit");
        let before = a.volume_client().cache_stats();
        assert_eq!(
            writer.getattr(&f).await.expect("attr").size,
            data.len() as u64
        );
        writer.getattr(&root).await.expect("dir attr");
        assert_eq!(writer.lookup(&root, &name).await.expect("lookup"), f);
        let after = a.volume_client().cache_stats();
        assert!(
            after.misses == before.misses && after.hits >= before.hits + 3,
            "round {round}: the writer asked a server for what it had just changed"
        );
        // Another client changes the file: the writer's promise breaks before that
        // client's COMMIT returns, so the writer sees the change at once.
        let g = other.lookup(&root, &name).await.expect("lookup");
        assert_eq!(g, f);
        write_file(&mut other, &g, b"changed by another client, longer").await;
        assert_eq!(writer.getattr(&f).await.expect("attr").size, 33);
        assert_eq!(
            writer.read_all(&f).await.expect("read"),
            b"changed by another client, longer"
        );
    }
    // Names the writer cached from its own creates go when another client changes them.
    other.remove(&root, "mine-0").await.expect("remove");
    assert_eq!(
        writer.lookup(&root, "mine-0").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    let moved = writer.lookup(&root, "mine-1").await.expect("lookup");
    other
        .rename(&root, "mine-1", &root, "moved")
        .await
        .expect("rename");
    assert_eq!(
        writer.lookup(&root, "mine-1").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(writer.lookup(&root, "moved").await.expect("lookup"), moved);
    a.stop().await;
    b.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_holds_no_promise_its_clients_trust() {
    let mut cluster = Cluster::start().await;
    let Pair {
        b,
        mut writer,
        mut reader,
        f,
        ..
    } = Pair::start(&cluster, None, "f", b"before").await;
    // The server restarts (its promise table is gone); the writer changes the file as soon
    // as it answers. The reader must not answer from what it cached before.
    cluster.stop_server(0).await;
    cluster.start_server(0).await;
    // The writer's daemon answers JUKEBOX until it has the server back (the kernel retries).
    for _ in 0..100 {
        if writer.getattr(&f).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write_file(&mut writer, &f, b"after the restart").await;
    assert_eq!(
        reader.read_all(&f).await.expect("read"),
        b"after the restart"
    );
    // And its cache works again once its channel is back.
    wait_for_promises(b.volume_client(), &mut reader, &f).await;
    write_file(&mut writer, &f, b"and again").await;
    assert_eq!(reader.read_all(&f).await.expect("read"), b"and again");
    b.stop().await;
    cluster.shutdown().await;
}

/// The server process is SIGKILLed (no connection is closed: the reader learns nothing)
/// and restarted at once; the writer changes the file as soon as it answers. Once the
/// writer's COMMIT returns the reader sees the change, and its cache works again (a
/// reader that only reads used to stay out of touch with the server until it wrote).
/// Here the kill takes the 2 s call deadline to notice, past the reader's 1 s lease, so
/// this does not isolate the restarted server's own 1.2 s grace before answering batches
/// (that matters only when a restart and a writer's reconnect fit within the lease; the
/// server's unit test `a_batch_right_after_a_restart_waits_out_the_promises_given_before`
/// checks the grace itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_at_once_leaves_no_stale_cache() {
    let mut p = crate::durability::Procs::start().await;
    let a = SecondClient::start_on(&p.layout, None).await;
    let b = SecondClient::start_on(&p.layout, None).await;
    let (mut writer, mut reader) = (a.nfs().await, b.nfs().await);
    let root = writer.root.clone();
    let f = writer.create(&root, "f").await.expect("create");
    for round in 0..3u32 {
        let before = format!("before kill {round}");
        write_file(&mut writer, &f, before.as_bytes()).await;
        wait_for_promises(b.volume_client(), &mut reader, &f).await;
        assert_eq!(reader.read_all(&f).await.expect("read"), before.as_bytes());
        p.kill_server(0);
        p.start_server(0).await;
        let after = format!("after restart {round}, longer");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                writer
                    .write(&f, 0, after.as_bytes(), stable_how::FILE_SYNC)
                    .await?;
                writer.commit(&f).await
            };
            match attempt.await {
                Ok(()) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!("writer waits for the server: {e:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the writer never got through: {e:?}"),
            }
        }
        match reader.read(&f, 0, 64).await {
            Ok((data, _)) => assert_eq!(
                data,
                after.as_bytes(),
                "round {round}: a stale read after the writer's COMMIT"
            ),
            Err(e) => assert!(
                matches!(e, nfsstat3::NFS3ERR_JUKEBOX | nfsstat3::NFS3ERR_IO),
                "{e:?}"
            ),
        }
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cut_off_stops_trusting_its_cache_before_the_writer_is_answered() {
    let cluster = Cluster::start().await;
    let proxies = [UdpProxy::start(cluster.layout.servers[0].addr()).await];
    let proxy = &proxies[0];
    let Pair {
        b,
        mut writer,
        mut reader,
        f,
        ..
    } = Pair::start(&cluster, Some(&proxies), "f", b"before the cut").await;
    // The break cannot reach the reader: the writer is answered once the server gave up
    // on it, and by then the reader no longer trusts what it cached.
    proxy.set_cut(true);
    write_file(&mut writer, &f, b"after the cut").await;
    match reader.read_all(&f).await {
        Ok(data) => assert_eq!(data, b"after the cut", "a stale read from the cache"),
        Err(e) => assert!(
            matches!(e, nfsstat3::NFS3ERR_JUKEBOX | nfsstat3::NFS3ERR_IO),
            "{e:?}"
        ),
    }
    proxy.set_cut(false);
    let mut seen = Vec::new();
    for _ in 0..100 {
        if let Ok(data) = reader.read_all(&f).await {
            seen = data;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, b"after the cut");
    b.stop().await;
    cluster.shutdown().await;
}

/// Reads as the kernel's read-ahead issues them: many in flight, in pieces that are not
/// block-aligned, out of order, while the client fetches ahead. Every byte must match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unaligned_reads_return_the_written_bytes() {
    let cluster = Cluster::start_replicated(3).await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "big").await.expect("create");
    let size = 24u64 << 20;
    let byte = |at: u64| (at.wrapping_mul(2_654_435_761) >> 13) as u8;
    for chunk in 0..size >> 20 {
        let data: Vec<u8> = (0..1u64 << 20).map(|i| byte((chunk << 20) + i)).collect();
        nfs.write(&f, chunk << 20, &data, stable_how::UNSTABLE)
            .await
            .expect("write");
    }
    nfs.commit(&f).await.expect("commit");
    // One reader going through the file in order in pieces that end off block boundaries
    // (the client fetches ahead of it), twice (the second time from the cache).
    for piece in [200_000u64, 200_000, 1 << 20] {
        let mut at = 0;
        while at < size {
            let (data, _) = nfs.read(&f, at, piece as u32).await.expect("read");
            assert_eq!(
                data.len() as u64,
                piece.min(size - at),
                "short read at {at}"
            );
            for (i, b) in data.iter().enumerate() {
                assert_eq!(*b, byte(at + i as u64), "in order, at {}", at + i as u64);
            }
            at += data.len() as u64;
        }
    }
    for pass in 0..3u64 {
        let mut tasks = Vec::new();
        for lane in 0..6u64 {
            let port = cluster.nfs_port();
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let mut nfs = Nfs::connect(port).await.expect("mount");
                let piece = [131_072u64, 1 << 20, 4096, 200_000][(lane % 4) as usize];
                let mut at = (lane * 777_777 + pass * 12_345) % size;
                let mut read = 0u64;
                while read < size / 2 {
                    let (data, _) = nfs.read(&f, at, piece as u32).await.expect("read");
                    for (i, b) in data.iter().enumerate() {
                        assert_eq!(
                            *b,
                            byte(at + i as u64),
                            "pass {pass} lane {lane} at {}",
                            at + i as u64
                        );
                    }
                    assert_eq!(
                        data.len() as u64,
                        piece.min(size - at),
                        "short read at {at}"
                    );
                    read += data.len() as u64;
                    at = (at + piece) % size;
                }
            }));
        }
        for t in tasks {
            t.await.expect("reader");
        }
    }
    cluster.shutdown().await;
}
