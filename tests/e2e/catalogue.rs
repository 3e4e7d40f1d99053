//! The catalogue across three servers of a real cluster (QUIC between them): the group
//! forms by itself, a change proposed through one server is committed and read through
//! the others.

use crate::support::Cluster;
use codetta_server::catalogue::{CatalogueError, CatalogueState, Change, Outcome, ServerEntry};
use codetta_wire::message::CatalogueCall;
use std::time::{Duration, Instant};

async fn read(inspector: &codetta_cluster::Inspector, i: usize) -> Option<CatalogueState> {
    let bytes = inspector.catalogue(i, CatalogueCall::Read).await.ok()?;
    let answer: Result<CatalogueState, CatalogueError> = postcard::from_bytes(&bytes).ok()?;
    answer.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_server_is_read_through_the_others() {
    let cluster = Cluster::start_replicated(3).await;
    let inspector = codetta_cluster::Inspector::as_admin(&cluster.layout).expect("inspector");
    let change = Change::AddServer(ServerEntry {
        name: "s9".into(),
        addr: "127.0.0.9:7000".into(),
    });
    let encoded = postcard::to_allocvec(&change).expect("encode");
    // The group elects a leader on its own; proposals through s2 go to it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let epoch = loop {
        assert!(Instant::now() < deadline, "no catalogue leader");
        match inspector
            .catalogue(1, CatalogueCall::Propose(encoded.clone()))
            .await
            .map(|b| postcard::from_bytes::<Result<Outcome, CatalogueError>>(&b))
        {
            Ok(Ok(Ok(Ok(epoch)))) => break epoch,
            other => eprintln!("no catalogue leader yet: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for i in [0, 2] {
        let state = read(&inspector, i).await.expect("read");
        assert!(state.epoch >= epoch);
        assert!(state.servers.contains_key("s9"), "{state:?}");
    }
    inspector.close().await;
    cluster.shutdown().await;
}
