//! Restarts: handles, directory cookies and data survive both processes restarting.

use crate::support::Cluster;
use nfs3_client::nfs3_types::nfs3::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_and_cookies_survive_restarts() {
    let mut cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let d = nfs.mkdir(&root, "dir").await.expect("mkdir");
    let mut created = Vec::new();
    for i in 0..300 {
        let name = format!("f{i:04}");
        let fh = nfs.create(&d, &name).await.expect("create");
        created.push((name, fh));
    }
    let f = created[7].1.clone();
    nfs.write(&f, 0, b"persistent", stable_how::UNSTABLE)
        .await
        .expect("write");
    nfs.commit(&f).await.expect("commit");
    // Read a first page, then restart both processes and continue from its cookie.
    let (page, eof) = nfs.readdirplus(&d, 0, 2048).await.expect("page");
    assert!(!eof && !page.is_empty());
    let cookie = page.last().map(|(_, c)| *c).unwrap_or(0);
    drop(nfs);
    cluster.stop_client().await;
    cluster.stop_server(0).await;
    cluster.start_server(0).await;
    cluster.start_client().await;
    let mut nfs = cluster.nfs().await;
    assert_eq!(nfs.root, root, "the root handle is the same");
    assert_eq!(
        nfs.read_all(&f).await.expect("old handle reads"),
        b"persistent"
    );
    let mut rest = Vec::new();
    let mut c = cookie;
    loop {
        let (page, eof) = nfs
            .readdirplus(&d, c, 8192)
            .await
            .expect("page after restart");
        if let Some((_, last)) = page.last() {
            c = *last;
        }
        rest.extend(page.into_iter().map(|(n, _)| n));
        if eof {
            break;
        }
    }
    let mut all: Vec<String> = page.into_iter().map(|(n, _)| n).chain(rest).collect();
    all.sort();
    let mut expected: Vec<String> = created.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(all, expected, "every entry exactly once across the restart");
    for (name, fh) in created.iter().step_by(37) {
        assert_eq!(&nfs.lookup(&d, name).await.expect("lookup"), fh);
        nfs.getattr(fh).await.expect("old handle valid");
    }
    cluster.shutdown().await;
}
