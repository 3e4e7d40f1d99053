//! Large and sparse files, streamed: never a whole file in memory.

use crate::support::{Cluster, stream_round_trip};
use nfs3_client::nfs3_types::nfs3::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_file_reads_back_equal() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    stream_round_trip(&mut nfs, "big", 256).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_write_near_10_gib() {
    let cluster = Cluster::start().await;
    let mut nfs = cluster.nfs().await;
    let root = nfs.root.clone();
    let f = nfs.create(&root, "sparse").await.expect("create");
    let offset = 10u64 << 30;
    nfs.write(&f, offset - 3, b"end of a big file", stable_how::FILE_SYNC)
        .await
        .expect("write near 10 GiB");
    let attrs = nfs.getattr(&f).await.expect("attr");
    assert_eq!(attrs.size, offset - 3 + 17);
    let (data, eof) = nfs.read(&f, offset - 10, 100).await.expect("read tail");
    assert_eq!(&data[..7], &[0u8; 7], "the hole reads as zeros");
    assert_eq!(&data[7..], b"end of a big file");
    assert!(eof);
    let (hole, _) = nfs.read(&f, 5 << 30, 4096).await.expect("read hole");
    assert_eq!(hole, vec![0u8; 4096]);
    cluster.shutdown().await;
}
