//! The catalogue's contents and how a change applies to them: a pure state machine, the
//! same on every server because every server applies the same committed changes in the
//! same order (rule 13).

use codetta_wire::message::{ReplicaMember, VolumeInfo};
use codetta_wire::{Fid, ReplicaId, Time, VolumeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A server of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEntry {
    pub name: String,
    pub addr: String,
}

/// A volume: its name, root, replica group and the epoch of its last change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeEntry {
    pub id: VolumeId,
    pub name: String,
    pub root: Fid,
    /// The time every replica gives the root it creates.
    pub created: Time,
    pub vsg: Vec<ReplicaMember>,
    /// The catalogue epoch at which this volume last changed: requests carrying an older
    /// one for it are refused.
    pub epoch: u64,
}

/// Everything the catalogue holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueState {
    /// Goes up by one with every change that takes effect.
    pub epoch: u64,
    pub servers: BTreeMap<String, ServerEntry>,
    pub volumes: BTreeMap<u32, VolumeEntry>,
    /// The volume the export's root shows.
    pub root_volume: Option<VolumeId>,
    /// Revoked certificates, by fingerprint, with a note (who, why): servers refuse them.
    pub revoked: BTreeMap<String, String>,
    /// Per volume id, the replicas removed from its group, one per server (the latest):
    /// a leaving replica may still hold live copies its group has since deleted, so
    /// tombstones must wait for it. A replica added later learns of them from here (its
    /// own store records only departures it sees). An entry goes when its server is back
    /// in the group, leaves the cluster, or the volume goes; the servers themselves forget
    /// one once it answers that it no longer holds the volume. Last in the layout: a
    /// server before it reads the state and ignores this.
    pub departed: BTreeMap<u32, Vec<ReplicaMember>>,
}

/// A change to the catalogue, as proposed and committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    AddServer(ServerEntry),
    RemoveServer {
        name: String,
    },
    /// A new volume; ids and replica ids are chosen by the proposer (random) and checked
    /// for uniqueness here.
    CreateVolume {
        id: VolumeId,
        name: String,
        created: Time,
        vsg: Vec<ReplicaMember>,
    },
    RemoveVolume {
        name: String,
    },
    AddReplica {
        volume: String,
        member: ReplicaMember,
    },
    RemoveReplica {
        volume: String,
        server: String,
        /// The volume's epoch the removal was decided at (after its drain): refused if the
        /// group changed since (two removals drained into each other's leaving replicas).
        expect_epoch: Option<u64>,
    },
    SetRoot {
        volume: String,
    },
    /// Revokes the certificate with this fingerprint (a lost machine's).
    Revoke {
        fingerprint: String,
        note: String,
    },
}

/// Why a change did not take effect (it still occupies its log entry; the epoch stays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("a volume named {0:?} exists")]
    VolumeExists(String),
    #[error("volume id {0} is taken")]
    VolumeIdTaken(u32),
    #[error("replica id {0} is taken")]
    ReplicaIdTaken(u64),
    #[error("no volume named {0:?}")]
    UnknownVolume(String),
    #[error("no server named {0:?}")]
    UnknownServer(String),
    #[error("server {0:?} already holds a replica of that volume")]
    AlreadyMember(String),
    #[error("server {server:?} holds no replica of {volume:?}")]
    NotMember { volume: String, server: String },
    #[error("a volume keeps at least one replica")]
    LastReplica,
    #[error("server {0:?} still holds replicas: {1}")]
    ServerInUse(String, String),
    #[error("a server named {0:?} exists at another address")]
    ServerExists(String),
    #[error("{0:?} is the root volume")]
    IsRoot(String),
    #[error("a volume needs at least one replica")]
    NoReplicas,
    #[error("the group of {0:?} changed during the drain; run the removal again")]
    GroupChanged(String),
    #[error(
        "{0:?} is not a certificate fingerprint (64 hex digits; `codetta certs fingerprint FILE`)"
    )]
    BadFingerprint(String),
}

/// What a change did: the epoch it made, or why it was refused.
pub type Outcome = Result<u64, Refusal>;

impl CatalogueState {
    /// `entry` as clients and replicas see it, with its servers' addresses.
    pub fn volume_info(&self, entry: &VolumeEntry) -> VolumeInfo {
        VolumeInfo {
            id: entry.id,
            name: entry.name.clone(),
            root: entry.root,
            vsg: entry.vsg.clone(),
            epoch: entry.epoch,
            addrs: entry
                .vsg
                .iter()
                .filter_map(|m| {
                    self.servers
                        .get(&m.server)
                        .map(|s| (s.name.clone(), s.addr.clone()))
                })
                .collect(),
        }
    }

    /// The volume named `name`.
    pub fn volume(&self, name: &str) -> Option<&VolumeEntry> {
        self.volumes.values().find(|v| v.name == name)
    }

    fn volume_id(&self, name: &str) -> Result<u32, Refusal> {
        self.volume(name)
            .map(|v| v.id.0)
            .ok_or_else(|| Refusal::UnknownVolume(name.to_string()))
    }

    fn replica_taken(&self, id: ReplicaId) -> bool {
        self.volumes
            .values()
            .any(|v| v.vsg.iter().any(|m| m.replica == id))
    }

    fn known_server(&self, name: &str) -> Result<(), Refusal> {
        if self.servers.contains_key(name) {
            Ok(())
        } else {
            Err(Refusal::UnknownServer(name.to_string()))
        }
    }

    /// The replicas that left volume `id`'s group and may still hold what they had.
    pub fn departed(&self, id: VolumeId) -> &[ReplicaMember] {
        self.departed.get(&id.0).map_or(&[], Vec::as_slice)
    }

    /// Drops the departed replicas `drop_if` picks (by volume id and member).
    fn forget_departed(&mut self, drop_if: impl Fn(u32, &ReplicaMember) -> bool) {
        for (volume, members) in self.departed.iter_mut() {
            members.retain(|m| !drop_if(*volume, m));
        }
        self.departed.retain(|_, members| !members.is_empty());
    }

    /// Applies `change`: the new epoch, or the refusal (nothing changed).
    pub fn apply(&mut self, change: &Change) -> Outcome {
        let epoch = self.epoch + 1;
        match change {
            Change::AddServer(s) => match self.servers.get(&s.name) {
                Some(old) if old == s => return Ok(self.epoch),
                Some(_) => return Err(Refusal::ServerExists(s.name.clone())),
                None => {
                    self.servers.insert(s.name.clone(), s.clone());
                }
            },
            Change::RemoveServer { name } => {
                self.known_server(name)?;
                let holding: Vec<&str> = self
                    .volumes
                    .values()
                    .filter(|v| v.vsg.iter().any(|m| &m.server == name))
                    .map(|v| v.name.as_str())
                    .collect();
                if !holding.is_empty() {
                    return Err(Refusal::ServerInUse(name.clone(), holding.join(", ")));
                }
                self.servers.remove(name);
                self.forget_departed(|_, m| &m.server == name);
            }
            Change::CreateVolume {
                id,
                name,
                created,
                vsg,
            } => {
                if vsg.is_empty() {
                    return Err(Refusal::NoReplicas);
                }
                if self.volume(name).is_some() {
                    return Err(Refusal::VolumeExists(name.clone()));
                }
                if self.volumes.contains_key(&id.0) {
                    return Err(Refusal::VolumeIdTaken(id.0));
                }
                for m in vsg {
                    self.known_server(&m.server)?;
                    if self.replica_taken(m.replica) {
                        return Err(Refusal::ReplicaIdTaken(m.replica.0));
                    }
                }
                self.volumes.insert(
                    id.0,
                    VolumeEntry {
                        id: *id,
                        name: name.clone(),
                        root: Fid::root(*id),
                        created: *created,
                        vsg: vsg.clone(),
                        epoch,
                    },
                );
            }
            Change::RemoveVolume { name } => {
                let id = self.volume_id(name)?;
                if self.root_volume == Some(VolumeId(id)) {
                    return Err(Refusal::IsRoot(name.clone()));
                }
                self.volumes.remove(&id);
                self.forget_departed(|volume, _| volume == id);
            }
            Change::AddReplica { volume, member } => {
                let id = self.volume_id(volume)?;
                self.known_server(&member.server)?;
                if self.replica_taken(member.replica) {
                    return Err(Refusal::ReplicaIdTaken(member.replica.0));
                }
                let v = self
                    .volumes
                    .get_mut(&id)
                    .ok_or_else(|| Refusal::UnknownVolume(volume.clone()))?;
                if v.vsg.iter().any(|m| m.server == member.server) {
                    return Err(Refusal::AlreadyMember(member.server.clone()));
                }
                v.vsg.push(member.clone());
                v.epoch = epoch;
                self.forget_departed(|volume, m| volume == id && m.server == member.server);
            }
            Change::RemoveReplica {
                volume,
                server,
                expect_epoch,
            } => {
                let id = self.volume_id(volume)?;
                let v = self
                    .volumes
                    .get_mut(&id)
                    .ok_or_else(|| Refusal::UnknownVolume(volume.clone()))?;
                if expect_epoch.is_some_and(|e| e != v.epoch) {
                    return Err(Refusal::GroupChanged(volume.clone()));
                }
                if !v.vsg.iter().any(|m| &m.server == server) {
                    return Err(Refusal::NotMember {
                        volume: volume.clone(),
                        server: server.clone(),
                    });
                }
                if v.vsg.len() == 1 {
                    return Err(Refusal::LastReplica);
                }
                let gone: Vec<ReplicaMember> = v
                    .vsg
                    .iter()
                    .filter(|m| &m.server == server)
                    .cloned()
                    .collect();
                v.vsg.retain(|m| &m.server != server);
                v.epoch = epoch;
                self.forget_departed(|volume, m| volume == id && &m.server == server);
                self.departed.entry(id).or_default().extend(gone);
            }
            Change::SetRoot { volume } => {
                let id = self.volume_id(volume)?;
                self.root_volume = Some(VolumeId(id));
            }
            Change::Revoke { fingerprint, note } => {
                if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Refusal::BadFingerprint(fingerprint.clone()));
                }
                self.revoked
                    .insert(fingerprint.to_ascii_lowercase(), note.clone());
            }
        }
        self.epoch = epoch;
        Ok(epoch)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn server(n: &str) -> Change {
        Change::AddServer(ServerEntry {
            name: n.into(),
            addr: format!("{n}:7000"),
        })
    }

    fn member(r: u64, s: &str) -> ReplicaMember {
        ReplicaMember {
            replica: ReplicaId(r),
            server: s.into(),
        }
    }

    fn create(id: u32, name: &str, vsg: Vec<ReplicaMember>) -> Change {
        Change::CreateVolume {
            id: VolumeId(id),
            name: name.into(),
            created: Time { secs: 1, nanos: 0 },
            vsg,
        }
    }

    #[test]
    fn changes_take_effect_in_order_and_refusals_change_nothing() {
        let mut s = CatalogueState::default();
        for n in ["s1", "s2", "s3"] {
            s.apply(&server(n)).unwrap();
        }
        assert_eq!(
            s.apply(&server("s1")),
            Ok(3),
            "the same server again is a no-op"
        );
        let e = s
            .apply(&create(7, "home", vec![member(1, "s1"), member(2, "s2")]))
            .unwrap();
        assert_eq!(s.volume("home").unwrap().epoch, e);
        let before = s.clone();
        for (change, refusal) in [
            (
                create(8, "home", vec![member(3, "s1")]),
                Refusal::VolumeExists("home".into()),
            ),
            (
                create(7, "x", vec![member(3, "s1")]),
                Refusal::VolumeIdTaken(7),
            ),
            (
                create(8, "x", vec![member(1, "s3")]),
                Refusal::ReplicaIdTaken(1),
            ),
            (
                create(8, "x", vec![member(3, "s9")]),
                Refusal::UnknownServer("s9".into()),
            ),
            (create(8, "x", vec![]), Refusal::NoReplicas),
            (
                Change::AddReplica {
                    volume: "home".into(),
                    member: member(4, "s1"),
                },
                Refusal::AlreadyMember("s1".into()),
            ),
            (
                Change::RemoveServer { name: "s2".into() },
                Refusal::ServerInUse("s2".into(), "home".into()),
            ),
        ] {
            assert_eq!(s.apply(&change), Err(refusal));
            assert_eq!(s, before, "a refusal changes nothing");
        }
        // Growing and shrinking the group moves the volume's epoch.
        let grown = s
            .apply(&Change::AddReplica {
                volume: "home".into(),
                member: member(3, "s3"),
            })
            .unwrap();
        assert_eq!(s.volume("home").unwrap().vsg.len(), 3);
        assert_eq!(s.volume("home").unwrap().epoch, grown);
        assert_eq!(
            s.apply(&Change::RemoveReplica {
                volume: "home".into(),
                server: "s1".into(),
                expect_epoch: Some(grown - 1),
            }),
            Err(Refusal::GroupChanged("home".into())),
            "a removal decided before the group changed is refused"
        );
        s.apply(&Change::RemoveReplica {
            volume: "home".into(),
            server: "s1".into(),
            expect_epoch: Some(grown),
        })
        .unwrap();
        s.apply(&Change::RemoveReplica {
            volume: "home".into(),
            server: "s2".into(),
            expect_epoch: None,
        })
        .unwrap();
        assert_eq!(
            s.apply(&Change::RemoveReplica {
                volume: "home".into(),
                server: "s3".into(),
                expect_epoch: None,
            }),
            Err(Refusal::LastReplica)
        );
        s.apply(&Change::SetRoot {
            volume: "home".into(),
        })
        .unwrap();
        assert_eq!(
            s.apply(&Change::RemoveVolume {
                name: "home".into()
            }),
            Err(Refusal::IsRoot("home".into()))
        );
        s.apply(&Change::RemoveServer { name: "s1".into() })
            .unwrap();
        assert!(!s.servers.contains_key("s1"));
    }
    /// A replica added after another left learns of it from the catalogue: the departed
    /// stay listed until their server is back in the group, leaves the cluster, or the
    /// volume goes.
    #[test]
    fn a_removed_replica_is_listed_as_departed_until_its_server_returns_or_goes() {
        let mut s = CatalogueState::default();
        for n in ["s1", "s2", "s3", "s4"] {
            s.apply(&server(n)).unwrap();
        }
        s.apply(&create(7, "home", vec![member(1, "s1"), member(2, "s2")]))
            .unwrap();
        s.apply(&create(8, "work", vec![member(5, "s1"), member(6, "s2")]))
            .unwrap();
        let remove = |volume: &str, server: &str| Change::RemoveReplica {
            volume: volume.into(),
            server: server.into(),
            expect_epoch: None,
        };
        let add = |volume: &str, m: ReplicaMember| Change::AddReplica {
            volume: volume.into(),
            member: m,
        };
        s.apply(&remove("home", "s2")).unwrap();
        s.apply(&remove("work", "s2")).unwrap();
        s.apply(&add("home", member(3, "s3"))).unwrap();
        assert_eq!(s.departed(VolumeId(7)), [member(2, "s2")]);
        // Removed again after coming back: listed once, with its latest replica.
        s.apply(&add("home", member(4, "s2"))).unwrap();
        assert_eq!(s.departed(VolumeId(7)), [], "back in the group");
        s.apply(&remove("home", "s2")).unwrap();
        assert_eq!(s.departed(VolumeId(7)), [member(4, "s2")]);
        // A refused removal lists nothing.
        assert_eq!(
            s.apply(&remove("home", "s4")),
            Err(Refusal::NotMember {
                volume: "home".into(),
                server: "s4".into()
            })
        );
        assert_eq!(s.departed(VolumeId(7)), [member(4, "s2")]);
        s.apply(&Change::RemoveVolume {
            name: "work".into(),
        })
        .unwrap();
        assert_eq!(s.departed(VolumeId(8)), []);
        s.apply(&Change::RemoveServer { name: "s2".into() })
            .unwrap();
        assert!(s.departed.is_empty(), "{:?}", s.departed);
    }
}
