//! A 3-server cluster (servers as separate processes, the client as a process) through the
//! NFS endpoint: a server SIGKILLed mid-write, deletes while a replica is down, a 1 MiB
//! change resynced by shipping about 1 MiB, and every server killed at once.

use crate::durability::Procs;
use crate::support::nfs::{Fh, Nfs, mode};
use codetta_bench::patiently;
use codetta_bench::workloads::payload;
use codetta_cluster::{Answer, Inspector};
use codetta_wire::Fid;
use nfs3_client::nfs3_types::nfs3::*;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// The fid inside an NFS handle (after its 8-byte generation).
pub(crate) fn fid_of(fh: &Fh) -> Fid {
    Fid::from_bytes(&fh.data.as_ref()[8..]).expect("a Codetta handle")
}

/// Waits until every server holds `fids` in the same state; panics after `limit`.
pub(crate) async fn wait_until_agreed(
    inspector: &Inspector,
    fids: &[Fid],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for fid in fids {
            if !inspector.agree(*fid).await {
                all = false;
                break;
            }
        }
        if all {
            return started.elapsed();
        }
        if started.elapsed() > limit {
            for fid in fids {
                eprintln!("{fid}: {:#?}", inspector.states(*fid).await);
            }
            panic!("replicas did not converge within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes `mib` MiB of pseudo-random data (seeded by `seed`) into `f` at `offset` in 1 MiB
/// UNSTABLE writes, calling `during(i)` before write `i`, then COMMITs; returns the data's
/// blake3.
async fn write_stream(
    nfs: &mut Nfs,
    f: &Fh,
    offset: u64,
    mib: u64,
    seed: u64,
    mut during: impl FnMut(u64),
) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for i in 0..mib {
        during(i);
        let data = payload(seed + i, MIB as usize);
        h.update(&data);
        patiently!(
            nfs.write(f, offset + i * MIB, &data, stable_how::UNSTABLE)
                .await
        )
        .expect("write");
    }
    patiently!(nfs.commit(f).await).expect("commit");
    h.finalize()
}

async fn digest(nfs: &mut Nfs, f: &Fh) -> (u64, blake3::Hash) {
    let mut h = blake3::Hasher::new();
    let n = patiently!(
        nfs.read_each(f, |d| {
            h.update(d);
        })
        .await
    )
    .expect("read");
    (n, h.finalize())
}

async fn killed_during_a_256_mib_write(heal: bool) {
    let mut p = Procs::start_replicated_with(
        3,
        if heal {
            None
        } else {
            Some("heal_interval_ms = 0")
        },
    )
    .await;
    let inspector = Inspector::new(&p.layout).expect("inspector");
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "big").await.expect("create");
    let mut killed = false;
    let servers = &mut p.servers;
    let written = write_stream(&mut nfs, &f, 0, 256, 0, |i| {
        if i == 64 {
            servers.kill(2);
            killed = true;
        }
    })
    .await;
    assert!(killed);
    assert_eq!(
        digest(&mut nfs, &f).await,
        (256 * MIB, written),
        "reads are right"
    );
    p.start_server(2).await;
    let fid = fid_of(&f);
    if heal {
        // No client access at all: the servers find the difference themselves.
        drop(nfs);
        let took =
            wait_until_agreed(&inspector, &[fid, fid_of(&root)], Duration::from_secs(120)).await;
        eprintln!("converged without a client in {took:?}");
    } else {
        // Healing is off: a client access validates the file, finds the replicas differ and
        // has them resolved.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !inspector.agree(fid).await {
            assert!(
                Instant::now() < deadline,
                "{:#?}",
                inspector.states(fid).await
            );
            assert_eq!(digest(&mut nfs, &f).await, (256 * MIB, written));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let states = inspector.states(fid).await;
    let Answer::State(s) = &states[2] else {
        panic!("{states:?}")
    };
    assert_eq!(s.attrs.size, 256 * MIB);
    // A stream of writes racing healing is not a conflict: no copy was made.
    for i in 0..3 {
        let status = inspector.status(i).await.expect("status");
        for v in &status.volumes {
            assert!(v.conflicts.is_empty(), "s{}: {:?}", i + 1, v.conflicts);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_write_converges_without_a_client() {
    killed_during_a_256_mib_write(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_write_converges_after_a_client_access() {
    killed_during_a_256_mib_write(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_while_a_replica_is_down_stays_deleted() {
    let mut p = Procs::start_replicated(3).await;
    let inspector = Inspector::new(&p.layout).expect("inspector");
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "d").await.expect("mkdir");
    let f = nfs.create(&d, "f").await.expect("create");
    nfs.write(&f, 0, b"doomed", stable_how::FILE_SYNC)
        .await
        .expect("write");
    let keep = nfs.create(&d, "keep").await.expect("create");
    p.kill_server(1);
    patiently!(nfs.remove(&d, "f").await).expect("remove while s2 is down");
    patiently!(nfs.write(&keep, 0, b"kept", stable_how::FILE_SYNC).await).expect("write");
    p.start_server(1).await;
    wait_until_agreed(
        &inspector,
        &[fid_of(&d), fid_of(&f), fid_of(&keep)],
        Duration::from_secs(60),
    )
    .await;
    for i in 0..3 {
        let names: Vec<String> = inspector
            .list(i, fid_of(&d))
            .await
            .expect("list")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["keep".to_string()], "server {i}");
    }
    assert_eq!(
        patiently!(nfs.lookup(&d, "f").await),
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    assert_eq!(
        patiently!(nfs.read_all(&keep).await).expect("read"),
        b"kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_1_mib_change_to_a_256_mib_file_ships_about_1_mib() {
    let mut p = Procs::start_replicated(3).await;
    let inspector = Inspector::new(&p.layout).expect("inspector");
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "big").await.expect("create");
    write_stream(&mut nfs, &f, 0, 256, 0, |_| {}).await;
    let fid = fid_of(&f);
    wait_until_agreed(&inspector, &[fid], Duration::from_secs(60)).await;
    // A replica that fell behind for a moment during the big write (a slow machine) may
    // still be finishing its resync: start counting once the totals are still.
    let mut shipped_before = shipped_each(&inspector).await;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = shipped_each(&inspector).await;
        if now == shipped_before {
            break;
        }
        shipped_before = now;
    }
    p.kill_server(2);
    write_stream(&mut nfs, &f, 100 * MIB, 1, 999, |_| {}).await;
    p.start_server(2).await;
    wait_until_agreed(&inspector, &[fid], Duration::from_secs(60)).await;
    // s3 restarted, so its totals start again from zero; the others' are differences.
    let after = shipped_each(&inspector).await;
    let shipped = after[0].saturating_sub(shipped_before[0])
        + after[1].saturating_sub(shipped_before[1])
        + after[2];
    eprintln!("resync of a 1 MiB change shipped {shipped} bytes");
    assert!(shipped >= MIB, "the change was shipped: {shipped}");
    assert!(
        shipped <= MIB + MIB / 10,
        "at most 1.1x the change: {shipped}"
    );
}

/// Chunk bytes shipped by resolution coordinated by each server since it started.
async fn shipped_each(inspector: &Inspector) -> Vec<u64> {
    let mut out = Vec::new();
    for i in 0..3 {
        out.push(
            inspector
                .status(i)
                .await
                .map_or(0, |s| s.resolution.bytes_shipped),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_servers_killed_at_once_lose_no_acknowledged_write() {
    let mut p = Procs::start_replicated(3).await;
    let inspector = Inspector::new(&p.layout).expect("inspector");
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "d").await.expect("mkdir");
    let f = nfs.create(&d, "f").await.expect("create");
    let written = write_stream(&mut nfs, &f, 0, 8, 7, |_| {}).await;
    nfs.rename(&d, "f", &root, "moved").await.expect("rename");
    let s = nfs.symlink(&root, "link", "moved").await.expect("symlink");
    for i in 0..3 {
        p.kill_server(i);
    }
    for i in 0..3 {
        p.start_server(i).await;
    }
    let moved = patiently!(nfs.lookup(&root, "moved").await).expect("lookup");
    assert_eq!(moved, f);
    assert_eq!(digest(&mut nfs, &moved).await, (8 * MIB, written));
    assert_eq!(
        patiently!(nfs.readlink(&s).await).expect("readlink"),
        b"moved"
    );
    wait_until_agreed(
        &inspector,
        &[fid_of(&root), fid_of(&d), fid_of(&f)],
        Duration::from_secs(60),
    )
    .await;
}

/// FIFOs, sockets and device nodes made while a replica is down reach it (type and device
/// number included) and read back as made; only root makes device nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_files_made_while_a_replica_is_down_reach_it() {
    let mut p = Procs::start_replicated(3).await;
    let inspector = Inspector::new(&p.layout).expect("inspector");
    let mut nfs = p.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "dev").await.expect("mkdir");
    let device = |major, minor| devicedata3 {
        dev_attributes: mode(0o600),
        spec: specdata3 {
            specdata1: major,
            specdata2: minor,
        },
    };
    p.kill_server(1);
    let fifo = patiently!(
        nfs.mknod(&d, "fifo", mknoddata3::NF3FIFO(mode(0o640)))
            .await
    )
    .expect("fifo");
    let sock = patiently!(
        nfs.mknod(&d, "sock", mknoddata3::NF3SOCK(mode(0o755)))
            .await
    )
    .expect("socket");
    let chr = patiently!(
        nfs.mknod(&d, "null", mknoddata3::NF3CHR(device(1, 3)))
            .await
    )
    .expect("char device");
    let blk = patiently!(
        nfs.mknod(&d, "loop", mknoddata3::NF3BLK(device(7, 9)))
            .await
    )
    .expect("block device");
    p.start_server(1).await;
    let fids = [
        fid_of(&d),
        fid_of(&fifo),
        fid_of(&sock),
        fid_of(&chr),
        fid_of(&blk),
    ];
    wait_until_agreed(&inspector, &fids, Duration::from_secs(60)).await;
    for i in 0..3 {
        let mut names: Vec<String> = inspector
            .list(i, fid_of(&d))
            .await
            .expect("list")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        assert_eq!(names, ["fifo", "loop", "null", "sock"], "server {i}");
    }
    let kinds = [
        (&fifo, ftype3::NF3FIFO, 0o640, (0, 0)),
        (&sock, ftype3::NF3SOCK, 0o755, (0, 0)),
        (&chr, ftype3::NF3CHR, 0o600, (1, 3)),
        (&blk, ftype3::NF3BLK, 0o600, (7, 9)),
    ];
    for (fh, kind, m, (major, minor)) in kinds {
        let a = patiently!(nfs.getattr(fh).await).expect("getattr");
        assert_eq!(
            (a.type_, a.mode, a.rdev.specdata1, a.rdev.specdata2, a.size),
            (kind, m, major, minor, 0)
        );
        assert_eq!(
            nfs.read(fh, 0, 16).await.map(|_| ()),
            Err(nfsstat3::NFS3ERR_INVAL)
        );
    }
    let mut user = Nfs::connect_as(p.layout.nfs_port, 1000, 1000)
        .await
        .expect("mount");
    let open = nfs.mkdir(&root, "open").await.expect("mkdir");
    nfs.setattr(&open, mode(0o777)).await.expect("chmod");
    assert_eq!(
        user.mknod(&open, "dev", mknoddata3::NF3CHR(device(1, 3)))
            .await
            .map(|_| ()),
        Err(nfsstat3::NFS3ERR_PERM),
        "device nodes are root's"
    );
    assert!(
        user.mknod(&open, "pipe", mknoddata3::NF3FIFO(mode(0o600)))
            .await
            .is_ok()
    );
}

/// Hard links made, moved and removed while a replica is down reach it: the same names
/// for one object on every server, the data read back through each name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hard_links_made_while_a_replica_is_down_reach_it() {
    let mut p = Procs::start_replicated(3).await;
    let inspector = Inspector::new(&p.layout).expect("inspector");
    let mut nfs = p.nfs().await;
    let top = nfs.root.clone();
    let root = nfs.mkdir(&top, "t").await.expect("mkdir");
    let d = nfs.mkdir(&root, "d").await.expect("mkdir");
    let f = nfs.create(&root, "f").await.expect("create");
    let data = payload(3, 200_000);
    nfs.write(&f, 0, &data, stable_how::FILE_SYNC)
        .await
        .expect("write");
    let gone = nfs.create(&root, "gone").await.expect("create");
    nfs.link(&gone, &d, "gone2").await.expect("link");
    p.kill_server(1);
    assert_eq!(patiently!(nfs.link(&f, &d, "g").await), Ok(2));
    assert_eq!(patiently!(nfs.link(&f, &root, "h").await), Ok(3));
    patiently!(nfs.rename(&root, "h", &d, "h2").await).expect("rename a link");
    patiently!(nfs.remove(&root, "gone").await).expect("remove one name");
    p.start_server(1).await;
    let fids = [fid_of(&root), fid_of(&d), fid_of(&f), fid_of(&gone)];
    wait_until_agreed(&inspector, &fids, Duration::from_secs(60)).await;
    for i in 0..3 {
        let mut in_root: Vec<(String, Fid)> = inspector.list(i, fid_of(&root)).await.expect("list");
        in_root.sort();
        assert_eq!(
            in_root,
            [("d".to_string(), fid_of(&d)), ("f".to_string(), fid_of(&f))],
            "server {i}"
        );
        let mut in_d: Vec<(String, Fid)> = inspector.list(i, fid_of(&d)).await.expect("list");
        in_d.sort();
        assert_eq!(
            in_d,
            [
                ("g".to_string(), fid_of(&f)),
                ("gone2".to_string(), fid_of(&gone)),
                ("h2".to_string(), fid_of(&f))
            ],
            "server {i}"
        );
    }
    for (dir, name) in [(&root, "f"), (&d, "g"), (&d, "h2")] {
        let fh = nfs.lookup(dir, name).await.expect("lookup");
        assert_eq!(nfs.getattr(&fh).await.expect("attr").nlink, 3);
        assert_eq!(nfs.read_all(&fh).await.expect("read"), data, "{name}");
    }
    assert_eq!(nfs.getattr(&gone).await.expect("attr").nlink, 1);
}
