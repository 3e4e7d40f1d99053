//! The catalogue in a run: the Raft group the servers form, the volume made through it,
//! and group changes as faults. An operator removes a replica (the server drains it into
//! one that stays first, and refuses while it cannot) or adds the missing server's replica
//! back; the call goes to a seeded server like `codetta volume` sends it, and runs while
//! the other faults go on. Clients learn of a change when a server refuses their epoch.

use super::server_node::ServerNode;
use super::{VOLUME, VOLUME_NAME, World};
use bytes::Bytes;
use codetta_certs::Role;
use codetta_server::catalogue::{self, Catalogue, Change, QuicTransport};
use codetta_server::peers::Peers;
use codetta_wire::message::{ReplicaMember, VolumeCall, VolumeInfo};
use codetta_wire::{ReplicaId, Request, Time};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long an operator waits for a group change. A removal drains first (for up to
/// [`codetta_server::admin::DRAIN_DEADLINE`] on the server): under the workers' load and
/// the faults, that takes from a second to tens of seconds. The change may take effect
/// even when the call is not answered: the read-back asks the catalogue.
const ADMIN_DEADLINE: Duration = Duration::from_secs(60);

/// How long the set-up waits for every server to hold its replica.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// The group change under way, if any (how the finished ones went is in the report).
#[derive(Default)]
pub(super) struct GroupChanges {
    running: Option<Running>,
}

/// The operator's call under way.
struct Running {
    what: String,
    /// The server it went to.
    via: String,
    task: JoinHandle<Result<(), String>>,
}

/// Refusals whose reasons a report keeps.
const WHY_KEPT: usize = 8;

async fn propose(catalogue: &Catalogue<QuicTransport>, change: Change) -> anyhow::Result<u64> {
    match catalogue.propose(change.clone()).await {
        Ok(Ok(epoch)) => Ok(epoch),
        Ok(Err(refusal)) => anyhow::bail!("the catalogue refused {change:?}: {refusal}"),
        Err(e) => anyhow::bail!("proposing {change:?}: {e}"),
    }
}

impl World {
    /// Forms the catalogue group of every server, enrols them and creates the volume on
    /// all of them; returns it once every server holds its replica.
    pub(super) async fn create_volume(&mut self) -> anyhow::Result<VolumeInfo> {
        let nodes: Vec<_> = self
            .entries
            .iter()
            .map(|e| ServerNode::catalogue_node(&e.name))
            .collect();
        let Some(first) = self.servers[0].catalogue().cloned() else {
            anyhow::bail!("{} is not running", self.servers[0].name);
        };
        first.initialize(&nodes).await?;
        for node in &nodes {
            let entry = catalogue::ServerEntry {
                name: node.name.clone(),
                addr: node.addr.clone(),
            };
            propose(&first, Change::AddServer(entry)).await?;
        }
        let vsg = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| ReplicaMember {
                replica: ReplicaId(1000 + i as u64),
                server: e.name.clone(),
            })
            .collect();
        let create = Change::CreateVolume {
            id: VOLUME,
            name: VOLUME_NAME.into(),
            created: Time { secs: 1, nanos: 0 },
            vsg,
        };
        let epoch = propose(&first, create).await?;
        let waited = tokio::time::timeout(READY_WITHIN, async {
            while !self.servers.iter().all(|s| s.follows(VOLUME, epoch)) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        if waited.is_err() {
            anyhow::bail!("the servers did not all hold the new volume within {READY_WITHIN:?}");
        }
        self.current_volume()
            .ok_or_else(|| anyhow::anyhow!("no server's catalogue has the volume"))
    }

    /// The volume as the newest catalogue among the running servers has it.
    pub(super) fn current_volume(&self) -> Option<VolumeInfo> {
        self.servers
            .iter()
            .filter_map(ServerNode::catalogue_state)
            .filter_map(|state| state.volume(VOLUME_NAME).map(|e| state.volume_info(e)))
            .max_by_key(|info| info.epoch)
    }

    /// Starts a group change unless one is under way: with every server in the group,
    /// a seeded one's replica is removed; else the missing server's is added back.
    pub(super) async fn change_group(&mut self) {
        self.collect_group_change().await;
        if self.group.running.is_some() {
            return;
        }
        let Some(info) = self.current_volume() else {
            return;
        };
        let call = if info.vsg.len() == self.servers.len() {
            // A server cut off from every other is the one an operator removes; else
            // one drawn.
            let isolated = info.vsg.iter().position(|m| {
                info.vsg
                    .iter()
                    .all(|o| o.server == m.server || self.net.is_cut(&m.server, &o.server))
            });
            let drawn = self.net.draw(info.vsg.len() as u64) as usize;
            let m = isolated.unwrap_or(drawn);
            VolumeCall::RemoveReplica {
                name: VOLUME_NAME.into(),
                server: info.vsg[m].server.clone(),
                force: false,
            }
        } else {
            let Some(missing) = self
                .entries
                .iter()
                .find(|e| !info.vsg.iter().any(|m| m.server == e.name))
            else {
                return;
            };
            VolumeCall::AddReplica {
                name: VOLUME_NAME.into(),
                server: missing.name.clone(),
            }
        };
        let via = self.entries[self.net.draw(self.entries.len() as u64) as usize]
            .name
            .clone();
        let what = format!("{call:?} through {via}");
        self.note(format!("operator: {what}"));
        let via_ = via.clone();
        let make = self.net.link_maker("admin", Role::Admin, ADMIN_DEADLINE);
        let peers = Peers::making(&self.entries, make);
        let task = tokio::spawn(async move {
            peers
                .call(&via_, &Request::Volume(call), Bytes::new())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        self.group.running = Some(Running { what, via, task });
    }

    /// Counts the group change under way if it has finished.
    async fn collect_group_change(&mut self) {
        if self
            .group
            .running
            .as_ref()
            .is_some_and(|r| r.task.is_finished())
        {
            self.finish_group_change().await;
        }
    }

    fn count_group_change(&mut self, what: &str, outcome: Result<(), String>) {
        self.note(format!("operator: {what}: {outcome:?}"));
        match outcome {
            Ok(()) if what.starts_with("RemoveReplica") => self.report.replicas_removed += 1,
            Ok(()) => self.report.replicas_added += 1,
            Err(e) => {
                self.report.group_changes_refused += 1;
                if self.report.why_refused.len() < WHY_KEPT {
                    self.report.why_refused.push(format!("{what}: {e}"));
                }
            }
        }
    }

    /// Waits for the group change under way (after the faults: it ends, or its deadline
    /// does).
    pub(super) async fn finish_group_change(&mut self) {
        if let Some(running) = self.group.running.take() {
            let outcome = running
                .task
                .await
                .unwrap_or_else(|e| Err(format!("the operator's task ended: {e}")));
            self.count_group_change(&running.what, outcome);
        }
    }

    /// Whether server `name` coordinates the group change under way. Faults spare it:
    /// a drain under load takes long enough that a kill of its server would end almost
    /// every one (a kill ends the call and the operator tries again; the simulation
    /// wants changes that complete).
    pub(super) fn coordinates_group_change(&self, name: &str) -> bool {
        self.group
            .running
            .as_ref()
            .is_some_and(|r| r.via == name && !r.task.is_finished())
    }
}
