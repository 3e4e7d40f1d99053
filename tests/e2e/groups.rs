//! Replica groups changing under a live cluster (rule 13), on three server processes and an
//! in-process client: a replica added while a client writes is filled and ends equal to
//! the others, shipping about the data's size; a replica removed while the client still
//! holds the old catalogue is refused by epoch, the client refreshes and loses nothing; a
//! replica holding the only copy of an acknowledged write is not removed without `--force`;
//! conflicting catalogue changes across a partition take effect only on the majority side;
//! a new replica left alone in the middle of its fill serves no half-installed file.

use crate::support::nfs::Nfs;
use crate::support::proxy::proxy_peer_links;
use crate::support::{codetta_binary, wait_until};
use codetta_bench::patiently;
use codetta_client::ClientDaemon;
use codetta_cluster::{Inspector, Layout, ServerProcs, admin};
use codetta_wire::message::{ReplyBody, VolumeCall, VolumeInfo};
use codetta_wire::{FsError, Request, VolumeId};
use nfs3_client::nfs3_types::nfs3::stable_how;
use std::time::{Duration, Instant};

/// Servers as processes, the root volume on `members`, and a client daemon in this process.
struct Setup {
    _tmp: tempfile::TempDir,
    layout: Layout,
    servers: ServerProcs,
    client: ClientDaemon,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Setup {
    async fn start(members: &[&str]) -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::prepare_on_free_ports(tmp.path(), 3).expect("layout");
        Self::start_on(tmp, layout, members).await
    }

    async fn start_on(tmp: tempfile::TempDir, layout: Layout, members: &[&str]) -> Setup {
        let mut servers = ServerProcs::new(codetta_binary(), &layout);
        servers.start_all().await.expect("servers");
        let members: Vec<String> = members.iter().map(|s| s.to_string()).collect();
        admin::ensure_volume(&layout.admin, "root", &members)
            .await
            .expect("root volume");
        let config = layout.client_config().expect("client config");
        let (stop, rx) = tokio::sync::watch::channel(false);
        let client = ClientDaemon::start(&config, rx).await.expect("client");
        Setup {
            _tmp: tmp,
            layout,
            servers,
            client,
            _stop: stop,
        }
    }

    async fn nfs(&self) -> Nfs {
        Nfs::connect(self.client.nfs_addr.port())
            .await
            .expect("mount")
    }

    async fn volume(&self, call: VolumeCall) -> anyhow::Result<ReplyBody> {
        admin::call_within(
            &self.layout.admin,
            &Request::Volume(call),
            Duration::from_secs(120),
        )
        .await
    }

    async fn info(&self) -> VolumeInfo {
        match self
            .volume(VolumeCall::Info {
                name: "root".into(),
            })
            .await
            .expect("info")
        {
            ReplyBody::Volume(v) => v,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    codetta_bench::workloads::payload(i as u64, len)
}

/// Writes file `name` in `dir` with `data` (UNSTABLE, then COMMIT).
async fn write_file(
    nfs: &mut Nfs,
    dir: &nfs3_client::nfs3_types::nfs3::nfs_fh3,
    name: &str,
    data: &[u8],
) {
    let f = patiently!(nfs.create(dir, name).await).expect("create");
    patiently!(nfs.write(&f, 0, data, stable_how::UNSTABLE).await).expect("write");
    patiently!(nfs.commit(&f).await).expect("commit");
}

/// Waits until servers `servers` hold `volume` with equal digests; the time it took.
async fn wait_equal(
    inspector: &Inspector,
    volume: VolumeId,
    servers: &[usize],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let mut digests = Vec::new();
        for &i in servers {
            digests.push(inspector.volume_digests(i, volume).await.ok());
        }
        if digests[0].is_some() && digests.iter().all(|d| *d == digests[0]) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "replicas still differ after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until server `i` holds no replica; panics after `limit`.
async fn wait_holds_nothing(inspector: &Inspector, i: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !inspector
        .status(i)
        .await
        .expect("status")
        .volumes
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "server {i} still holds a replica"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Chunk bytes resolution shipped, summed over every server's status (`inspector` with
/// the client certificate: status is not a server call).
async fn bytes_shipped(inspector: &Inspector) -> u64 {
    let mut total = 0;
    for i in 0..3 {
        total += inspector
            .status(i)
            .await
            .expect("status")
            .resolution
            .bytes_shipped;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_added_while_a_client_writes_ends_equal_shipping_the_data_once() {
    const FILES: usize = 1000;
    const SIZE: usize = 16 << 10;
    let setup = Setup::start(&["s1", "s2"]).await;
    let mut nfs = setup.nfs().await;
    let root = nfs.root.clone();
    let mut dirs = Vec::new();
    for d in 0..10 {
        dirs.push(nfs.mkdir(&root, &format!("d{d}")).await.expect("mkdir"));
    }
    for i in 0..FILES {
        write_file(&mut nfs, &dirs[i % 10], &format!("f{i}"), &payload(i, SIZE)).await;
    }
    let before = setup.info().await;
    assert_eq!(before.vsg.len(), 2);

    // A writer keeps writing new files while s3 joins.
    let port = setup.client.nfs_addr.port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let files = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (stop, files) = (stop.clone(), files.clone());
        tokio::spawn(async move {
            let mut nfs = Nfs::connect(port).await.expect("mount");
            let root = nfs.root.clone();
            let w = patiently!(nfs.mkdir(&root, "w").await).expect("mkdir w");
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                write_file(&mut nfs, &w, &format!("w{n}"), &payload(100_000 + n, SIZE)).await;
                n += 1;
                files.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            n
        })
    };
    let written = || files.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("the writer's first files", Duration::from_secs(30), || {
        written() >= 5
    })
    .await;
    let grown = match setup
        .volume(VolumeCall::AddReplica {
            name: "root".into(),
            server: "s3".into(),
        })
        .await
        .expect("add-replica")
    {
        ReplyBody::Volume(v) => v,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(grown.vsg.len(), 3);
    assert!(grown.epoch > before.epoch);
    assert!(
        grown
            .vsg
            .iter()
            .all(|m| before.vsg.iter().all(|b| b.replica != m.replica) || m.server != "s3")
    );
    // The writer goes on while s3 is filled: 40 more files after the group grew.
    let at_grow = written();
    wait_until("writes after the grow", Duration::from_secs(60), || {
        written() >= at_grow + 40
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.expect("writer");
    assert!(written > 0);

    // The client learned of s3 from a stale-epoch refusal and ships to it.
    let volume_client = &setup.client.root_volume;
    assert_eq!(volume_client.volume().vsg.len(), 3);
    assert!(
        volume_client
            .stats
            .group_refreshes
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    let inspector = Inspector::as_server(&setup.layout).expect("inspector");
    let took = wait_equal(&inspector, grown.id, &[0, 1, 2], Duration::from_secs(180)).await;
    let data = ((FILES + written) * SIZE) as u64;
    let as_client = Inspector::new(&setup.layout).expect("inspector");
    let shipped = bytes_shipped(&as_client).await;
    as_client.close().await;
    eprintln!(
        "filled s3 with {FILES} + {written} files ({} MiB) in {:.1} s after the writer stopped; \
         resolution shipped {} MiB ({:.2}x)",
        data >> 20,
        took.as_secs_f64(),
        shipped >> 20,
        shipped as f64 / data as f64
    );
    // The files written before s3 joined reached it only through resolution.
    assert!(shipped >= (FILES * SIZE) as u64, "shipped {shipped}");
    assert!(
        shipped as f64 <= 1.1 * data as f64,
        "shipped {shipped} for {data}"
    );
    // Everything reads back, from whichever replica the client picks.
    for i in (0..FILES).step_by(37) {
        let f = nfs
            .lookup(&dirs[i % 10], &format!("f{i}"))
            .await
            .expect("lookup");
        assert_eq!(nfs.read_all(&f).await.expect("read"), payload(i, SIZE));
    }
    inspector.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_replica_refuses_the_stale_client_which_refreshes_and_loses_nothing() {
    let setup = Setup::start(&["s1", "s2", "s3"]).await;
    let mut nfs = setup.nfs().await;
    let root = nfs.root.clone();
    for i in 0..20 {
        write_file(&mut nfs, &root, &format!("a{i}"), &payload(i, 4096)).await;
    }
    // The client still holds the 3-member group when s3 leaves.
    assert_eq!(setup.client.root_volume.volume().vsg.len(), 3);
    match setup
        .volume(VolumeCall::RemoveReplica {
            name: "root".into(),
            server: "s3".into(),
            force: false,
        })
        .await
    {
        Ok(ReplyBody::Done) => {}
        other => panic!("remove-replica: {other:?}"),
    }
    assert_eq!(setup.info().await.vsg.len(), 2);
    for i in 20..40 {
        write_file(&mut nfs, &root, &format!("a{i}"), &payload(i, 4096)).await;
    }
    let volume_client = &setup.client.root_volume;
    assert!(
        volume_client
            .stats
            .group_refreshes
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    assert_eq!(volume_client.volume().vsg.len(), 2);
    assert_eq!(volume_client.avsg().len(), 2);
    for i in 0..40 {
        let f = nfs.lookup(&root, &format!("a{i}")).await.expect("lookup");
        assert_eq!(nfs.read_all(&f).await.expect("read"), payload(i, 4096));
    }
    // s3 deletes its replica.
    let inspector = Inspector::new(&setup.layout).expect("inspector");
    wait_holds_nothing(&inspector, 2, Duration::from_secs(30)).await;
    inspector.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_holder_of_an_acknowledged_write_is_not_removed_without_force() {
    // No healing between servers: only the removal's own hand-over can save the write.
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::prepare_on_free_ports(tmp.path(), 3).expect("layout");
    for i in 0..3 {
        layout
            .add_server_setting(i, "heal_interval_ms = 0")
            .expect("setting");
    }
    let mut setup = Setup::start_on(tmp, layout, &["s1", "s2", "s3"]).await;
    let mut nfs = setup.nfs().await;
    let root = nfs.root.clone();
    write_file(&mut nfs, &root, "before", b"seen by all").await;
    // s1 and s2 die; a write is acknowledged by s3 alone.
    setup.servers.kill(0);
    setup.servers.kill(1);
    let f = patiently!(nfs.create(&root, "only-on-s3").await).expect("create");
    patiently!(nfs.write(&f, 0, b"precious", stable_how::FILE_SYNC).await).expect("write");
    // s3 dies; s1 and s2 come back (a majority for the catalogue).
    setup.servers.kill(2);
    setup.servers.start(0).await.expect("s1");
    setup.servers.start(1).await.expect("s2");
    let remove = |force| VolumeCall::RemoveReplica {
        name: "root".into(),
        server: "s3".into(),
        force,
    };
    let refused = loop {
        match setup.volume(remove(false)).await {
            Err(e) if e.downcast_ref::<FsError>().is_some_and(|e| matches!(e, FsError::Refused(t) if t.contains("no majority") || t.contains("no reachable leader"))) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => break other,
        }
    };
    let text = format!("{refused:?}");
    assert!(
        text.contains("s3 cannot be drained") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(
        setup.info().await.vsg.len(),
        3,
        "a refused removal changes nothing"
    );
    // With --force it goes while s3 is down. When s3 comes back it learns it left the
    // group, hands what only it held to a replica that stays, and only then deletes its
    // replica: the write is not lost.
    match setup.volume(remove(true)).await {
        Ok(ReplyBody::Done) => {}
        other => panic!("remove-replica --force: {other:?}"),
    }
    assert_eq!(setup.info().await.vsg.len(), 2);
    setup.servers.start(2).await.expect("s3");
    let inspector = Inspector::new(&setup.layout).expect("inspector");
    wait_holds_nothing(&inspector, 2, Duration::from_secs(60)).await;
    let f = patiently!(nfs.lookup(&root, "only-on-s3").await).expect("lookup");
    assert_eq!(
        patiently!(nfs.read_all(&f).await).expect("read"),
        b"precious"
    );
    let fid = crate::replication::fid_of(&f);
    let states = inspector.states(fid).await;
    assert!(
        states[..2]
            .iter()
            .all(|s| matches!(s, codetta_cluster::inspect::Answer::State(_))),
        "s1 and s2 hold the write: {states:?}"
    );
    inspector.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_catalogue_changes_across_a_partition_take_effect_on_the_majority_side_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::prepare_on_free_ports(tmp.path(), 3).expect("layout");
    // Server-to-server paths through proxies the test cuts.
    let proxies = proxy_peer_links(&layout).await;
    let setup = Setup::start_on(tmp, layout, &["s1", "s2", "s3"]).await;
    // s3 is cut off from s1 and s2; the admin reaches every server.
    for (&(i, j), p) in &proxies {
        if i == 2 || j == 2 {
            p.set_cut(true);
        }
    }
    let mut via_s3 = setup.layout.admin.clone();
    via_s3.server_name = "s3".into();
    via_s3.server_addr = setup.layout.servers[2].addr();
    let create = |name: &str, replicas: &[&str]| {
        Request::Volume(VolumeCall::Create {
            name: name.into(),
            replicas: replicas.iter().map(|s| s.to_string()).collect(),
        })
    };
    let minority =
        admin::call_within(&via_s3, &create("x", &["s3"]), Duration::from_secs(60)).await;
    let text = format!("{minority:?}");
    assert!(
        matches!(
            minority
                .as_ref()
                .err()
                .and_then(|e| e.downcast_ref::<FsError>()),
            Some(FsError::Refused(_))
        ) && text.contains("majority"),
        "the minority side gets a clear refusal: {text}"
    );
    let majority = admin::call_within(
        &setup.layout.admin,
        &create("x", &["s1", "s2"]),
        Duration::from_secs(60),
    )
    .await
    .expect("the majority side commits");
    let ReplyBody::Volume(x) = majority else {
        panic!("unexpected {majority:?}");
    };
    // Healed: every server, s3 included, has the majority's volume x and nothing else.
    for p in proxies.values() {
        p.set_cut(false);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match admin::call_within(
            &via_s3,
            &Request::Volume(VolumeCall::List),
            Duration::from_secs(20),
        )
        .await
        {
            Ok(ReplyBody::Volumes(list)) => {
                let names: Vec<&str> = list.iter().map(|v| v.name.as_str()).collect();
                assert!(names.len() <= 2, "{names:?}");
                if let Some(v) = list.iter().find(|v| v.name == "x") {
                    assert_eq!(v.id, x.id, "s3 sees the majority's x");
                    let servers: Vec<&str> = v.vsg.iter().map(|m| m.server.as_str()).collect();
                    assert_eq!(servers, ["s1", "s2"]);
                    break;
                }
            }
            other => eprintln!("s3 not caught up yet: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "s3 never saw the majority's change"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Streams `mib` MiB into a new file `name` in `dir` (1 MiB UNSTABLE writes, one COMMIT).
async fn stream_file(
    nfs: &mut Nfs,
    dir: &nfs3_client::nfs3_types::nfs3::nfs_fh3,
    name: &str,
    seed: u64,
    mib: u64,
) -> nfs3_client::nfs3_types::nfs3::nfs_fh3 {
    let f = patiently!(nfs.create(dir, name).await).expect("create");
    for i in 0..mib {
        let data = codetta_bench::workloads::payload(seed * 1_000_000 + i, 1 << 20);
        patiently!(nfs.write(&f, i << 20, &data, stable_how::UNSTABLE).await).expect("write");
    }
    patiently!(nfs.commit(&f).await).expect("commit");
    f
}

/// A new replica is left alone in the middle of its fill (every other replica SIGKILLed)
/// while a client reads every file through its handle: each reads whole and right, or not at
/// all (JUKEBOX for the one whose install was cut short, STALE or NOENT for those that never
/// arrived), never the zeros of a file whose attributes are in and blocks not (issue 19).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_left_alone_in_its_fill_serves_no_half_installed_file() {
    const FILES: u64 = 6;
    const MIB_EACH: u64 = 1;
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::prepare_on_free_ports(tmp.path(), 3).expect("layout");
    // Healing waits before each piece it installs: each file stays half-installed on s3 for
    // a while.
    for i in 0..3 {
        layout
            .add_server_setting(i, "test_install_delay_ms = 8000")
            .expect("setting");
    }
    let mut setup = Setup::start_on(tmp, layout, &["s1", "s2"]).await;
    let mut nfs = setup.nfs().await;
    let root = nfs.root.clone();
    let mut files = Vec::new();
    for i in 0..FILES {
        files.push(stream_file(&mut nfs, &root, &format!("f{i}"), 500 + i, MIB_EACH).await);
    }
    setup
        .volume(VolumeCall::AddReplica {
            name: "root".into(),
            server: "s3".into(),
        })
        .await
        .expect("add-replica");
    // The client learns of s3 (its next batch is refused for the old epoch) and takes it
    // into its AVSG.
    write_file(&mut nfs, &root, "probe", b"probe").await;
    let started = Instant::now();
    while !setup
        .client
        .root_volume
        .status()
        .servers
        .iter()
        .any(|(name, up)| name == "s3" && *up)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "s3 never joined the AVSG"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Once s3 holds some files whole and not all, others are on their way: s1 and s2 die.
    let inspector = Inspector::new(&setup.layout).expect("inspector");
    let fids: Vec<_> = files.iter().map(crate::replication::fid_of).collect();
    let started = Instant::now();
    loop {
        let mut filled = 0;
        for fid in &fids {
            filled += usize::from(inspector.agree(*fid).await);
        }
        if filled > 0 && filled < fids.len() {
            println!(
                "killing s1 and s2 with {filled} of {} files filled",
                fids.len()
            );
            break;
        }
        assert!(
            filled < fids.len(),
            "filled before the kill: widen the window"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no fill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inspector.close().await;
    setup.servers.kill(0);
    setup.servers.kill(1);
    let (mut whole, mut refused) = (0, Vec::new());
    for (i, f) in files.iter().enumerate() {
        let want: Vec<u8> = (0..MIB_EACH)
            .flat_map(|m| {
                codetta_bench::workloads::payload((500 + i as u64) * 1_000_000 + m, 1 << 20)
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(4);
        let outcome = loop {
            match nfs.read_all(f).await {
                Err(nfs3_client::nfs3_types::nfs3::nfsstat3::NFS3ERR_JUKEBOX)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(got) => {
                assert!(got == want, "f{i}: wrong bytes ({} read)", got.len());
                whole += 1;
            }
            Err(e) => refused.push(format!("f{i}: {e:?}")),
        }
    }
    println!("alone mid-fill: {whole} files read whole, refused: {refused:?}");
    assert!(whole >= 1, "the file filled before the kill reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: fills a new replica with 1 GiB while a client writes"]
async fn heavy_filling_a_1_gib_replica_while_a_client_writes() {
    const FILES: u64 = 64;
    const MIB_EACH: u64 = 16;
    let setup = Setup::start(&["s1", "s2"]).await;
    let mut nfs = setup.nfs().await;
    let root = nfs.root.clone();
    let mut fids = Vec::new();
    for i in 0..FILES {
        let f = stream_file(&mut nfs, &root, &format!("big{i}"), i, MIB_EACH).await;
        fids.push(crate::replication::fid_of(&f));
    }
    // The client's write throughput with nothing else going on.
    let started = Instant::now();
    stream_file(&mut nfs, &root, "quiet", 9000, 256).await;
    let quiet = 256.0 / started.elapsed().as_secs_f64();

    let port = setup.client.nfs_addr.port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut nfs = Nfs::connect(port).await.expect("mount");
            let root = nfs.root.clone();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                stream_file(&mut nfs, &root, &format!("during{n}"), 10_000 + n, 16).await;
                written.fetch_add(16, std::sync::atomic::Ordering::Relaxed);
                n += 1;
            }
        })
    };
    // Measured from the writer's third file on (connected and streaming).
    wait_until("the writer streaming", Duration::from_secs(30), || {
        written.load(std::sync::atomic::Ordering::Relaxed) >= 48
    })
    .await;
    let before = written.load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let grown = match setup
        .volume(VolumeCall::AddReplica {
            name: "root".into(),
            server: "s3".into(),
        })
        .await
        .expect("add-replica")
    {
        ReplyBody::Volume(v) => v,
        other => panic!("unexpected {other:?}"),
    };
    // Filled once s3 holds every big file in the state the others hold.
    let inspector = Inspector::new(&setup.layout).expect("inspector");
    for fid in &fids {
        while !inspector.agree(*fid).await {
            assert!(
                started.elapsed() < Duration::from_secs(900),
                "fill too slow"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let fill = started.elapsed().as_secs_f64();
    let during = (written.load(std::sync::atomic::Ordering::Relaxed) - before) as f64 / fill;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.expect("writer");
    let as_server = Inspector::as_server(&setup.layout).expect("inspector");
    let settled = wait_equal(&as_server, grown.id, &[0, 1, 2], Duration::from_secs(300)).await;
    let shipped = bytes_shipped(&inspector).await;
    println!(
        "filled a new replica with {} MiB in {fill:.1} s ({:.0} MiB/s); client writes: {quiet:.0} MiB/s \
         alone, {during:.0} MiB/s ({:.0}%) during the fill; all equal {:.1} s after the writer \
         stopped; resolution shipped {} MiB",
        FILES * MIB_EACH,
        (FILES * MIB_EACH) as f64 / fill,
        100.0 * during / quiet,
        settled.as_secs_f64(),
        shipped >> 20
    );
    inspector.close().await;
    as_server.close().await;
}
