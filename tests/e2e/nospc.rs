//! A full server: writes are refused with NOSPC, nothing is half-written, and space comes
//! back when files are removed.

use crate::support::nfs::{Fh, Nfs};
use codetta_bench::workloads::payload;
use codetta_cluster::{Layout, LocalCluster};
use nfs3_client::nfs3_types::nfs3::*;

const MIB: usize = 1 << 20;

/// Writes `data` at `offset` in pieces of at most 1 MiB (the endpoint's wtmax); the first
/// refusal.
async fn write(
    nfs: &mut Nfs,
    f: &Fh,
    offset: usize,
    data: &[u8],
    stable: stable_how,
) -> Result<(), nfsstat3> {
    for (i, piece) in data.chunks(MIB).enumerate() {
        nfs.write(f, (offset + i * MIB) as u64, piece, stable)
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_nospc_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::prepare_on_free_ports(tmp.path(), 1).expect("layout");
    layout
        .add_server_setting(0, &format!("capacity_bytes = {}", 3 * MIB + MIB / 2))
        .expect("capacity");
    let cluster = LocalCluster::start_with(layout).await.expect("cluster");
    let mut nfs = Nfs::connect(cluster.nfs_port()).await.expect("mount");
    let root = nfs.root.clone();
    let a = nfs.create(&root, "a").await.expect("create");
    let first = payload(1, 3 * MIB);
    write(&mut nfs, &a, 0, &first, stable_how::FILE_SYNC)
        .await
        .expect("fits");
    // A stable write past the capacity is refused and leaves the file as it was.
    let more = payload(2, 2 * MIB);
    assert_eq!(
        write(&mut nfs, &a, 3 * MIB, &more, stable_how::FILE_SYNC).await,
        Err(nfsstat3::NFS3ERR_NOSPC)
    );
    assert_eq!(nfs.getattr(&a).await.expect("attr").size, 3 * MIB as u64);
    // Unstable writes past it are reported by COMMIT.
    let b = nfs.create(&root, "b").await.expect("create");
    write(&mut nfs, &b, 0, &more, stable_how::UNSTABLE)
        .await
        .expect("logged");
    assert_eq!(nfs.commit(&b).await, Err(nfsstat3::NFS3ERR_NOSPC));
    assert_eq!(nfs.getattr(&b).await.expect("attr").size, 0);
    assert_eq!(nfs.read_all(&a).await.expect("read"), first);
    // Removing a file gives the space back.
    nfs.remove(&root, "a").await.expect("remove");
    write(&mut nfs, &b, 0, &more, stable_how::FILE_SYNC)
        .await
        .expect("fits again");
    assert_eq!(nfs.read_all(&b).await.expect("read"), more);
    cluster.shutdown().await;
}

/// FSSTAT reports the server's space: `df` falls as a file is written and comes back when
/// it is removed; the object count moves with creates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsstat_moves_with_writes_and_removes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::prepare_on_free_ports(tmp.path(), 1).expect("layout");
    layout
        .add_server_setting(0, &format!("capacity_bytes = {}", 64 * MIB))
        .expect("capacity");
    let cluster = LocalCluster::start_with(layout).await.expect("cluster");
    let mut nfs = Nfs::connect(cluster.nfs_port()).await.expect("mount");
    let root = nfs.root.clone();
    let (total, free, avail, files, _) = nfs.fsstat().await.expect("fsstat");
    assert_eq!(total, 64 * MIB as u64, "the configured capacity");
    assert_eq!(free, avail);
    let f = nfs.create(&root, "big").await.expect("create");
    write(&mut nfs, &f, 0, &payload(3, 8 * MIB), stable_how::FILE_SYNC)
        .await
        .expect("write");
    let (_, free_after, _, files_after, _) = nfs.fsstat().await.expect("fsstat");
    assert!(
        free - free_after >= 8 * MIB as u64,
        "free {free} -> {free_after} after 8 MiB"
    );
    assert_eq!(files_after, files + 1 + (free_after / 4096) - (free / 4096));
    nfs.remove(&root, "big").await.expect("remove");
    let (_, free_removed, _, _, _) = nfs.fsstat().await.expect("fsstat");
    assert!(free_removed > free_after, "space back after the remove");
    println!("fsstat: free {free} -> {free_after} after 8 MiB -> {free_removed} after the remove");
    cluster.shutdown().await;
}
