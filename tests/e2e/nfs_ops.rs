//! Every NFS procedure through the endpoint, one small cluster per test.

use crate::support::Cluster;
use crate::support::nfs::{Nfs, mode};
use nfs3_client::nfs3_types::nfs3::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_round_trip_through_the_endpoint() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "hello.txt").await.expect("create");
    nfs.write(&f, 0, b"hello world", stable_how::UNSTABLE)
        .await
        .expect("write");
    // The client's own unshipped write is visible at once.
    assert_eq!(nfs.getattr(&f).await.expect("getattr").size, 11);
    nfs.commit(&f).await.expect("commit");
    assert_eq!(nfs.read_all(&f).await.expect("read"), b"hello world");
    assert_eq!(nfs.lookup(&root, "hello.txt").await.expect("lookup"), f);
    assert_eq!(
        nfs.lookup(&root, "nope").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    cluster.shutdown().await;
}
