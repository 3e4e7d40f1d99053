//! A client never reads its own acknowledged update as undone: once its AVSG shrinks to a
//! replica that missed the update, reads of what the update changed wait (JUKEBOX) rather
//! than come from that replica alone. Found by the fault matrix: a rename over a name, then
//! a lookup of the name from the one replica that had missed the rename, so the next
//! remove took the replaced file and the acknowledged remove of the name was undone. The
//! daemon is restarted in between: what each replica missed outlives it.

use crate::partition::{Side, client};
use crate::support::codetta_binary;
use crate::support::nfs::Nfs;
use crate::support::proxy::{UdpProxy, proxy_peer_links};
use codetta_bench::patiently;
use codetta_cluster::{Layout, ServerProcs, admin};
use nfs3_client::nfs3_types::nfs3::{nfsstat3::NFS3ERR_JUKEBOX, stable_how};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_come_from_a_replica_that_missed_this_clients_update() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::prepare_on_free_ports(tmp.path(), 3).expect("layout");
    let peer_proxies = proxy_peer_links(&layout).await;
    let mut proxies = Vec::new();
    let mut routes = BTreeMap::new();
    for server in &layout.servers {
        let p = UdpProxy::start(server.addr()).await;
        routes.insert(server.addr().to_string(), p.addr.to_string());
        proxies.push(p);
    }
    let mut servers = ServerProcs::new(codetta_binary(), &layout);
    servers.start_all().await.expect("servers");
    admin::ensure_volume(&layout.admin, "root", &layout.server_names())
        .await
        .expect("root volume");
    let side = client(&layout, "writer", &routes).await;
    let mut nfs = Nfs::connect(side.port).await.expect("mount");
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "d").await.expect("mkdir");
    let old = nfs.create(&d, "old").await.expect("create old");
    nfs.write(&old, 0, b"old", stable_how::FILE_SYNC)
        .await
        .expect("write old");
    let new = nfs.create(&d, "new").await.expect("create new");
    nfs.write(&new, 0, b"new", stable_how::FILE_SYNC)
        .await
        .expect("write new");
    let f = nfs.create(&d, "f").await.expect("create f");
    nfs.write(&f, 0, b"v1", stable_how::FILE_SYNC)
        .await
        .expect("write v1");

    // s1 misses the next updates, and no server can bring them to it.
    proxies[0].set_cut(true);
    for j in [1, 2] {
        peer_proxies[&(0, j)].set_cut(true);
        peer_proxies[&(j, 0)].set_cut(true);
    }
    patiently!(nfs.rename(&d, "new", &d, "old").await).expect("rename new over old");
    patiently!(nfs.write(&f, 0, b"v2", stable_how::FILE_SYNC).await).expect("write v2");
    let volume = side.daemon.root_volume.clone();
    assert!(
        !volume.avsg().contains(&"s1".to_string()),
        "s1 left the AVSG: {:?}",
        volume.avsg()
    );
    // Trimmed from the log: a restarted daemon knows what s1 missed from the marks file
    // alone.
    patiently!(if volume.backlog() == 0 {
        Ok(())
    } else {
        Err(NFS3ERR_JUKEBOX)
    })
    .expect("records complete");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(volume);
    let Side { daemon, .. } = side;
    daemon.stop().await;
    let side = client(&layout, "writer", &routes).await;
    let mut nfs = Nfs::connect(side.port).await.expect("mount again");
    let volume = side.daemon.root_volume.clone();

    // Now the client reaches s1 alone.
    proxies[0].set_cut(false);
    proxies[1].set_cut(true);
    proxies[2].set_cut(true);
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut alone, mut refused) = (0, 0);
    while Instant::now() < deadline && alone < 2 {
        match nfs.lookup(&d, "old").await {
            Ok(fh) => assert!(
                fh == new,
                "the lookup found the replaced file: the client's own rename read as undone"
            ),
            Err(_) => refused += 1,
        }
        match nfs.read_all(&f).await {
            Ok(bytes) => assert_eq!(
                bytes, b"v2",
                "read the bytes the client's own acknowledged write replaced"
            ),
            Err(_) => refused += 1,
        }
        if volume.avsg() == ["s1"] {
            alone += 1;
        }
    }
    assert!(
        alone >= 2,
        "the AVSG never came down to s1 alone: {:?}",
        volume.avsg()
    );
    assert!(refused > 0, "reads answered from s1 alone");

    // Healed: the update is read back.
    for p in peer_proxies.values().chain(&proxies) {
        p.set_cut(false);
    }
    let fh = patiently!(nfs.lookup(&d, "old").await).expect("lookup after healing");
    assert!(fh == new, "after healing, old is the renamed file");
    let bytes = patiently!(nfs.read_all(&f).await).expect("read after healing");
    assert_eq!(bytes, b"v2");
}
