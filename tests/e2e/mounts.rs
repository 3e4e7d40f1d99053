//! Several volumes under one export: a mount point made with `codetta mkmount` shows the
//! root of its volume (new objects there belong to that volume, fileids stay unique across
//! volumes, `..` leads back, a rename across volumes is refused with XDEV), and
//! `codetta volume set-root` switches the export's root without a remount while handles
//! into the old root volume keep working.

use crate::replication::fid_of;
use crate::support::{Cluster, run_codetta};
use codetta_cluster::admin;
use codetta_wire::Request;
use codetta_wire::message::{ReplyBody, VolumeCall, VolumeInfo};
use nfs3_client::nfs3_types::nfs3::{nfsstat3, stable_how};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

async fn create(cluster: &Cluster, name: &str) -> VolumeInfo {
    match admin::call(
        &cluster.layout.admin,
        &Request::Volume(VolumeCall::Create {
            name: name.into(),
            replicas: Vec::new(),
        }),
    )
    .await
    .expect("create volume")
    {
        ReplyBody::Volume(v) => v,
        other => panic!("unexpected {other:?}"),
    }
}

/// `codetta mkmount PATH VOLUME --nfs-port P` as a user runs it.
fn mkmount(cluster: &Cluster, path: &str, volume: &str) {
    let admin = cluster.layout.dir.join("admin.toml");
    let port = cluster.nfs_port().to_string();
    let admin = admin.display().to_string();
    run_codetta(&[
        "mkmount",
        path,
        volume,
        "--nfs-port",
        &port,
        "--admin",
        &admin,
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_points_lead_into_other_volumes_and_set_root_switches_the_root() {
    let cluster = Cluster::start().await;
    let proj = create(&cluster, "proj").await;
    let alt = create(&cluster, "alt").await;
    mkmount(&cluster, "/proj", "proj");
    mkmount(&cluster, "/altm", "alt");

    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let keep = nfs.create(&root, "kept").await.expect("create");
    nfs.write(&keep, 0, b"in the first root", stable_how::FILE_SYNC)
        .await
        .expect("write");
    let p = nfs.lookup(&root, "proj").await.expect("lookup mount point");
    assert_eq!(fid_of(&p), proj.root, "the mount point shows proj's root");
    let attrs = nfs.getattr(&p).await.expect("getattr");
    assert_eq!(attrs.type_, nfs3_client::nfs3_types::nfs3::ftype3::NF3DIR);
    let d = nfs.mkdir(&p, "src").await.expect("mkdir in proj");
    let f = nfs.create(&d, "main.rs").await.expect("create in proj");
    assert_eq!(fid_of(&f).volume, proj.id, "new objects belong to proj");
    nfs.write(&f, 0, b"fn main() {}", stable_how::FILE_SYNC)
        .await
        .expect("write");
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"fn main() {}");
    // The listing shows the mount point as proj's root, with the fileid a lookup gives.
    let listed = nfs.list_ids(&root).await.expect("list root");
    let (_, proj_id) = listed
        .iter()
        .find(|(n, _)| n == "proj")
        .expect("proj listed");
    assert_eq!(*proj_id, attrs.fileid);
    // Fileids are unique across the volumes.
    let mut ids = BTreeSet::new();
    for dir in [&root, &p, &d] {
        for (name, id) in nfs.list_ids(dir).await.expect("list") {
            if name != "." && name != ".." {
                assert!(ids.insert(id), "fileid {id} of {name} seen twice");
            }
        }
    }
    // `..` of proj's root leads back to the export's root.
    let up = nfs.lookup(&p, "..").await.expect("..");
    assert_eq!(up, root);
    // Renames do not cross volumes.
    assert_eq!(
        nfs.rename(&root, "kept", &p, "kept").await,
        Err(nfsstat3::NFS3ERR_XDEV)
    );

    // A file in alt, through its mount point; then alt becomes the root.
    let a = nfs.lookup(&root, "altm").await.expect("altm");
    let marker = nfs.create(&a, "marker").await.expect("create in alt");
    nfs.write(&marker, 0, b"alt", stable_how::FILE_SYNC)
        .await
        .expect("write");
    match admin::call(
        &cluster.layout.admin,
        &Request::Volume(VolumeCall::SetRoot { name: "alt".into() }),
    )
    .await
    .expect("set-root")
    {
        ReplyBody::Done => {}
        other => panic!("unexpected {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if nfs.lookup(&root, "marker").await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the new root never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let names = nfs.list(&root).await.expect("list new root");
    assert!(
        names.contains(&"marker".to_string()) && !names.contains(&"kept".to_string()),
        "{names:?}"
    );
    // Handles into the old root volume keep working.
    assert_eq!(
        nfs.read_all(&keep).await.expect("read"),
        b"in the first root"
    );
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"fn main() {}");
    assert_eq!(alt.root.volume, fid_of(&marker).volume);

    // A volume removed from the catalogue is deleted from its server; the root volume
    // cannot be removed.
    let scratch = create(&cluster, "scratch").await;
    let remove = |name: &str| {
        Request::Volume(VolumeCall::Remove {
            name: name.to_string(),
        })
    };
    let refused = admin::call(&cluster.layout.admin, &remove("alt")).await;
    assert!(
        format!("{refused:?}").contains("is the root volume"),
        "{refused:?}"
    );
    admin::call(&cluster.layout.admin, &remove("scratch"))
        .await
        .expect("remove scratch");
    let inspector = codetta_cluster::Inspector::new(&cluster.layout).expect("inspector");
    let deadline = Instant::now() + Duration::from_secs(10);
    while inspector
        .status(0)
        .await
        .expect("status")
        .volumes
        .iter()
        .any(|v| v.info.id == scratch.id)
    {
        assert!(Instant::now() < deadline, "scratch still held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match admin::call(&cluster.layout.admin, &Request::Volume(VolumeCall::List))
        .await
        .expect("list")
    {
        ReplyBody::Volumes(list) => assert!(list.iter().all(|v| v.name != "scratch")),
        other => panic!("unexpected {other:?}"),
    }
    inspector.close().await;
    cluster.shutdown().await;
}
