//! A partition between clients and servers and between servers (UDP proxies the test
//! cuts), with writes on both sides: after healing nothing acknowledged is lost,
//! directories are merged, concurrent versions sit beside each other, a file deleted on
//! one side and updated on the other is back under a conflict name, `codetta conflicts`
//! lists them and `codetta repair` settles one.

use crate::replication::fid_of;
use crate::support::codetta_binary;
use crate::support::nfs::Nfs;
use crate::support::proxy::{UdpProxy, proxy_peer_links, route};
use codetta_bench::patiently;
use codetta_client::{ClientConfig, ClientDaemon};
use codetta_cluster::{Inspector, Layout, ServerProcs, admin, free_port};
use nfs3_client::nfs3_types::nfs3::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub(crate) struct Side {
    pub(crate) daemon: ClientDaemon,
    _stop: tokio::sync::watch::Sender<bool>,
    pub(crate) port: u16,
}

pub(crate) async fn client(layout: &Layout, name: &str, routes: &BTreeMap<String, String>) -> Side {
    let port = free_port().expect("port");
    let text = std::fs::read_to_string(&layout.client_toml).expect("client.toml");
    let text = route(&text, routes)
        .replace(
            &format!("nfs_listen = \"127.0.0.1:{}\"", layout.nfs_port),
            &format!("nfs_listen = \"127.0.0.1:{port}\""),
        )
        .replace(
            &format!("{:?}", layout.dir.join("client").display().to_string()),
            &format!("{:?}", layout.dir.join(name).display().to_string()),
        );
    let path = layout.dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write client config");
    let config = ClientConfig::load(&path).expect("client config");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let daemon = ClientDaemon::start(&config, rx)
        .await
        .expect("client starts");
    Side {
        daemon,
        _stop: stop,
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_both_sides_of_a_partition_merge_and_conflicts_are_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::prepare_on_free_ports(tmp.path(), 3).expect("layout");
    let addrs: Vec<String> = layout
        .servers
        .iter()
        .map(|s| s.addr().to_string())
        .collect();
    // Server-to-server paths: proxy (i, j) carries i's calls to j.
    let peer_proxies = proxy_peer_links(&layout).await;
    // Client-to-server paths for clients A (index 0) and B (index 1).
    let mut client_proxies: BTreeMap<(usize, usize), UdpProxy> = BTreeMap::new();
    let mut client_routes = [BTreeMap::new(), BTreeMap::new()];
    for (c, routes) in client_routes.iter_mut().enumerate() {
        for (j, (server, real)) in layout.servers.iter().zip(&addrs).enumerate() {
            let p = UdpProxy::start(server.addr()).await;
            routes.insert(real.clone(), p.addr.to_string());
            client_proxies.insert((c, j), p);
        }
    }
    let mut servers = ServerProcs::new(codetta_binary(), &layout);
    servers.start_all().await.expect("servers");
    admin::ensure_volume(&layout.admin, "root", &layout.server_names())
        .await
        .expect("root volume");
    let a = client(&layout, "client-a", &client_routes[0]).await;
    let b = client(&layout, "client-b", &client_routes[1]).await;
    let inspector = Inspector::new(&layout).expect("inspector");
    let mut na = Nfs::connect(a.port).await.expect("mount a");
    let mut nb = Nfs::connect(b.port).await.expect("mount b");
    let root = na.root.clone();
    let d = na.mkdir(&root, "d").await.expect("mkdir");
    let f = na.create(&d, "f").await.expect("create f");
    na.write(&f, 0, b"base", stable_how::FILE_SYNC)
        .await
        .expect("write");
    let g = na.create(&d, "g").await.expect("create g");
    na.write(&g, 0, b"g0", stable_how::FILE_SYNC)
        .await
        .expect("write");

    // Partition: {A, s1} | {B, s2, s3}.
    for j in [1, 2] {
        client_proxies[&(0, j)].set_cut(true);
        peer_proxies[&(0, j)].set_cut(true);
        peer_proxies[&(j, 0)].set_cut(true);
    }
    client_proxies[&(1, 0)].set_cut(true);
    let db = patiently!(nb.lookup(&root, "d").await).expect("B sees d");
    // Side A.
    let a1 = patiently!(na.create(&d, "a1").await).expect("create a1");
    patiently!(na.write(&a1, 0, b"made by A", stable_how::FILE_SYNC).await).expect("write a1");
    patiently!(na.write(&f, 0, b"from A", stable_how::FILE_SYNC).await).expect("write f on A");
    patiently!(na.remove(&d, "g").await).expect("remove g on A");
    // Side B.
    let b1 = patiently!(nb.create(&db, "b1").await).expect("create b1");
    patiently!(nb.write(&b1, 0, b"made by B", stable_how::FILE_SYNC).await).expect("write b1");
    let fb = patiently!(nb.lookup(&db, "f").await).expect("B sees f");
    patiently!(nb.write(&fb, 0, b"from B!", stable_how::FILE_SYNC).await).expect("write f on B");
    let gb = patiently!(nb.lookup(&db, "g").await).expect("B sees g");
    patiently!(
        nb.write(&gb, 0, b"g updated by B", stable_how::FILE_SYNC)
            .await
    )
    .expect("write g on B");

    // Heal.
    for p in peer_proxies.values().chain(client_proxies.values()) {
        p.set_cut(false);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let expected_names = loop {
        let mut lists = Vec::new();
        for i in 0..3 {
            let mut names: Vec<String> = inspector
                .list(i, fid_of(&d))
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            names.sort();
            lists.push(names);
        }
        let merged = lists[0].contains(&"a1".to_string()) && lists[0].contains(&"b1".to_string());
        let settled = merged
            && lists.iter().all(|l| *l == lists[0])
            && lists[0].iter().any(|n| n.starts_with("f.conflict-"))
            && lists[0].iter().any(|n| n.starts_with("g.conflict-"));
        let mut agree = settled;
        for fid in [fid_of(&d), fid_of(&f), fid_of(&g), fid_of(&a1), fid_of(&b1)] {
            agree = agree && inspector.agree(fid).await;
        }
        if agree {
            break lists[0].clone();
        }
        assert!(Instant::now() < deadline, "not merged: {lists:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("merged directory: {expected_names:?}");
    // Nothing acknowledged is lost: both new files, both versions of f, g's update.
    let mut na = Nfs::connect(a.port).await.expect("mount a again");
    assert_eq!(
        patiently!(na.read_all(&a1).await).expect("a1"),
        b"made by A"
    );
    assert_eq!(
        patiently!(na.read_all(&b1).await).expect("b1"),
        b"made by B"
    );
    let mut versions = Vec::new();
    for n in expected_names.iter().filter(|n| n.starts_with('f')) {
        let fh = patiently!(na.lookup(&d, n).await).expect("version of f");
        versions.push(patiently!(na.read_all(&fh).await).expect("read"));
    }
    versions.sort();
    versions.dedup();
    eprintln!(
        "versions of f: {:?}",
        versions
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
    );
    assert_eq!(versions, vec![b"from A".to_vec(), b"from B!".to_vec()]);
    // The deleted-and-updated file is back under a conflict name: the same object, with B's
    // update (a concurrent decision may also have left a conflict copy beside it).
    let mut g_back = None;
    for n in expected_names
        .iter()
        .filter(|n| n.starts_with("g.conflict-"))
    {
        let fh = patiently!(na.lookup(&d, n).await).expect("lookup g version");
        if fh == g {
            g_back = Some(fh);
        }
    }
    let g_back = g_back.expect("g itself is back under a conflict name");
    assert_eq!(
        patiently!(na.read_all(&g_back).await).expect("read g"),
        b"g updated by B"
    );
    // `codetta conflicts` lists both; `codetta repair` keeps the current f.
    let admin_toml = layout.dir.join("admin.toml").display().to_string();
    let out = std::process::Command::new(codetta_binary())
        .args(["conflicts", "--admin", &admin_toml])
        .output()
        .expect("codetta conflicts");
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listed.contains("/d/f.conflict-"), "{listed}");
    assert!(listed.contains("/d/g.conflict-"), "{listed}");
    let out = std::process::Command::new(codetta_binary())
        .args([
            "repair",
            "/d/f",
            "--keep",
            "current",
            "--nfs-port",
            &a.port.to_string(),
        ])
        .output()
        .expect("codetta repair");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = patiently!(na.list(&d).await).expect("list");
    assert!(
        !names.iter().any(|n| n.starts_with("f.conflict-")),
        "{names:?}"
    );
    drop((a.daemon, b.daemon));
    servers.stop_all();
}
