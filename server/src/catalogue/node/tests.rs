//! Three catalogue nodes in one process, over a transport of direct calls the test can
//! cut: changes commit on a majority, are forwarded to the leader, survive a restart, and
//! the minority side of a partition gets a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::catalogue::state::{Refusal, ServerEntry};
use codetta_wire::message::ReplicaMember;
use codetta_wire::{ReplicaId, Time, VolumeId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

/// The nodes of one test; those in `down` are cut off from all others (both ways).
#[derive(Default)]
struct World {
    nodes: Mutex<HashMap<String, Arc<Catalogue<Direct>>>>,
    down: Mutex<BTreeSet<String>>,
}

/// Direct calls from one node to the others of its world.
struct Direct {
    from: String,
    world: Arc<World>,
}

impl Direct {
    fn get(&self, name: &str) -> Result<Arc<Catalogue<Direct>>, String> {
        let down = self.world.down.lock().unwrap();
        if down.contains(name) || down.contains(&self.from) {
            return Err(format!("{} cannot reach {name}", self.from));
        }
        drop(down);
        self.world
            .nodes
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| format!("{name} not running"))
    }
}

impl CatalogueTransport for Direct {
    async fn raft(&self, to: &CatalogueNode, message: Vec<u8>) -> Result<Vec<u8>, String> {
        let node = self.get(&to.name)?;
        node.handle_raft(&message).await
    }

    fn read(
        &self,
        to: &CatalogueNode,
    ) -> impl Future<Output = Result<CatalogueState, CatalogueError>> + Send {
        let node = self.get(&to.name);
        let call: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
            Box::pin(async move { node.map_err(CatalogueError::NoLeader)?.read().await });
        call
    }

    fn propose(
        &self,
        to: &CatalogueNode,
        change: Change,
    ) -> impl Future<Output = Result<Outcome, CatalogueError>> + Send {
        // Boxed: the leader's `propose` may come back here (a type cycle otherwise).
        let node = self.get(&to.name);
        let call: std::pin::Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            node.map_err(CatalogueError::NoLeader)?
                .propose(change)
                .await
        });
        call
    }

    fn members(
        &self,
        to: &CatalogueNode,
        change: Membership,
    ) -> impl Future<Output = Result<(), CatalogueError>> + Send {
        let node = self.get(&to.name);
        let call: std::pin::Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(async move {
            node.map_err(CatalogueError::NoLeader)?
                .change_members(change)
                .await
        });
        call
    }
}

fn node(name: &str) -> CatalogueNode {
    CatalogueNode {
        name: name.into(),
        addr: format!("{name}:7000"),
    }
}

async fn start(net: &Arc<World>, dir: &Path, name: &str) -> Arc<Catalogue<Direct>> {
    let link = Arc::new(Direct {
        from: name.into(),
        world: net.clone(),
    });
    let c = Arc::new(
        Catalogue::start(node(name), &dir.join(format!("{name}.redb")), link)
            .await
            .unwrap(),
    );
    net.nodes.lock().unwrap().insert(name.into(), c.clone());
    c
}

/// Proposes until a leader exists (elections take a moment).
async fn propose(c: &Catalogue<Direct>, change: Change) -> Outcome {
    for _ in 0..100 {
        match c.propose(change.clone()).await {
            Ok(outcome) => return outcome,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no leader");
}

fn add_server(n: &str) -> Change {
    Change::AddServer(ServerEntry {
        name: n.into(),
        addr: format!("{n}:7000"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_commit_on_a_majority_and_survive_restarts_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let net = Arc::new(World::default());
    let names = ["s1", "s2", "s3"];
    let mut nodes = Vec::new();
    for n in names {
        nodes.push(start(&net, dir.path(), n).await);
    }
    let members: Vec<CatalogueNode> = names.iter().map(|n| node(n)).collect();
    nodes[0].initialize(&members).await.unwrap();
    nodes[1].initialize(&members).await.unwrap();

    // Any node takes a change; it is forwarded to the leader and committed.
    for (i, n) in names.iter().enumerate() {
        assert!(propose(&nodes[2 - i], add_server(n)).await.is_ok());
    }
    let create = Change::CreateVolume {
        id: VolumeId(9),
        name: "home".into(),
        created: Time { secs: 1, nanos: 0 },
        vsg: vec![ReplicaMember {
            replica: ReplicaId(1),
            server: "s1".into(),
        }],
    };
    let epoch = propose(&nodes[1], create.clone()).await.unwrap();
    assert_eq!(
        propose(&nodes[2], create).await,
        Err(Refusal::VolumeExists("home".into())),
        "a refusal is the same answer everywhere"
    );
    for c in &nodes {
        let s = c.read().await.unwrap();
        assert_eq!(s.epoch, epoch);
        assert_eq!(s.volume("home").unwrap().id, VolumeId(9));
    }

    // A partition: the side without a majority gets a clear error, the other commits.
    let leader = nodes[0].leader().await.unwrap();
    let minority = names.iter().position(|n| node_id(n) == leader).unwrap();
    {
        let mut down = net.down.lock().unwrap();
        // The old leader is cut off from both others (and they from it).
        down.insert(names[minority].to_string());
    }
    let majority: Vec<usize> = (0..3).filter(|i| *i != minority).collect();
    let set_root = Change::SetRoot {
        volume: "home".into(),
    };
    assert!(propose(&nodes[majority[0]], set_root).await.is_ok());
    let isolated = tokio::time::timeout(
        Duration::from_secs(3),
        nodes[minority].propose(add_server("s4")),
    )
    .await;
    assert!(
        matches!(isolated, Ok(Err(_)) | Err(_)),
        "the minority side commits nothing: {isolated:?}"
    );
    assert!(
        nodes[majority[1]]
            .read()
            .await
            .unwrap()
            .root_volume
            .is_some()
    );
    assert!(!nodes[majority[1]].local().servers.contains_key("s4"));

    // Heal, then restart every node from its files: the catalogue is all there.
    net.down.lock().unwrap().clear();
    let before = propose(&nodes[majority[1]], add_server("s5"))
        .await
        .unwrap();
    for c in &nodes {
        c.shutdown().await;
    }
    net.nodes.lock().unwrap().clear();
    drop(nodes);
    let mut nodes = Vec::new();
    for n in names {
        nodes.push(start(&net, dir.path(), n).await);
    }
    // (A node that was cut off catches up from the others: wait for it.)
    for c in &nodes {
        let mut local = c.local();
        for _ in 0..100 {
            if local.epoch >= before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            local = c.local();
        }
        assert!(local.epoch >= before, "{} < {before}", local.epoch);
        assert!(local.servers.contains_key("s5"));
        assert!(!local.servers.contains_key("s4"));
    }
    assert!(propose(&nodes[0], add_server("s6")).await.is_ok());
    for c in &nodes {
        c.shutdown().await;
    }
}
