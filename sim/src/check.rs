//! The checks after a settled run: the oracle's properties (nothing acknowledged lost, no
//! delete undone, no directory its own ancestor) and equal replicas.

use super::{TOKEN_LEN, World};
use codetta_server::store::Store;
use codetta_wire::replica::{ReplicaView, ViewBody};
use codetta_wire::{Fid, FileType, Name};
use std::collections::BTreeSet;
use std::sync::Arc;

impl World {
    /// `CODETTA_SIM_GREP=TEXT`: prints the trace lines containing TEXT (a fid, an op), to
    /// follow an object the failure message does not name.
    pub(crate) fn print_grepped(&self) {
        if let Ok(f) = std::env::var("CODETTA_SIM_GREP") {
            for l in self.trace.iter().filter(|l| l.contains(&f)) {
                eprintln!("DBG {l}");
            }
        }
    }

    /// The oracle's properties and replica equality.
    pub(crate) fn check(&mut self) -> anyhow::Result<()> {
        self.print_grepped();
        let stores: Vec<Arc<Store>> = self
            .servers
            .iter()
            .filter_map(|s| s.store.clone())
            .collect();
        let vol = self.vol.id;
        let mut fids = BTreeSet::new();
        for s in &stores {
            fids.extend(s.object_fids(vol).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        self.report.objects = fids.len();
        // All replicas equal.
        for fid in &fids {
            let views: Vec<ReplicaView> = stores
                .iter()
                .map(|s| s.view(*fid))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for v in &views[1..] {
                anyhow::ensure!(
                    v.tag == views[0].tag && v.version == views[0].version,
                    "replicas differ on {fid}: {}\n{}",
                    views
                        .iter()
                        .map(|v| format!("{:?}/{:?}", v.body, v.version))
                        .collect::<Vec<_>>()
                        .join("\n  "),
                    self.history_of_fid(*fid)
                );
            }
        }
        let s0 = &stores[0];
        let live = |fid: &Fid| matches!(s0.view(*fid).map(|v| v.body), Ok(ViewBody::Live(_)));
        // No directory cycle: every live object reaches the root.
        for fid in &fids {
            let mut cur = *fid;
            let mut hops = 0;
            while let Ok(v) = s0.view(cur) {
                let ViewBody::Live(m) = v.body else { break };
                if cur == Fid::root(vol) {
                    break;
                }
                cur = m.placement.parent;
                hops += 1;
                anyhow::ensure!(hops < 10_000, "{fid} is inside a directory cycle");
            }
        }
        // Every name of a live object is an entry leading to it, and every entry is one of
        // the names of the object it leads to.
        for fid in &fids {
            let Ok(ViewBody::Live(m)) = s0.view(*fid).map(|v| v.body) else {
                continue;
            };
            if *fid != Fid::root(vol) {
                for p in m.placements() {
                    let n = Name::new(p.name.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let found = s0.lookup(p.parent, &n).map(|s| s.fid);
                    anyhow::ensure!(
                        found == Ok(*fid),
                        "{fid} is named {}/{n} but that leads to {found:?}",
                        p.parent
                    );
                }
            }
            if m.ftype == FileType::Directory {
                let (_, entries, _) = s0
                    .readdir(*fid, 0, u32::MAX, false)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for e in entries {
                    let named = matches!(
                        s0.view(e.fid).map(|v| v.body),
                        Ok(ViewBody::Live(c)) if c.placements().any(|p| p.parent == *fid
                            && p.name == e.name.as_bytes())
                    );
                    anyhow::ensure!(named, "entry {fid}/{} is not a name of {}", e.name, e.fid);
                }
            }
        }
        // Acknowledged creates survive unless a delete was applied.
        for fid in &self.oracle.acked_creates {
            anyhow::ensure!(
                live(fid) || self.oracle.applied_deletes.contains(fid),
                "acknowledged create of {fid} lost"
            );
        }
        // Acknowledged deletes stay deleted, except under a conflict name.
        for fid in &self.oracle.acked_deletes {
            if let Ok(v) = s0.view(*fid)
                && let ViewBody::Live(m) = &v.body
            {
                let n = String::from_utf8_lossy(&m.placement.name).to_string();
                anyhow::ensure!(
                    n.contains(".conflict-")
                        || self.oracle.renamed_from_conflict.contains(fid)
                        || self.oracle.linked.contains(fid),
                    "deleted {fid} came back as {n:?}\n{}",
                    self.history_of_fid(*fid)
                );
            }
        }
        // Acknowledged writes: their data is somewhere unless replaced or deleted later.
        let mut tokens = BTreeSet::new();
        for fid in &fids {
            if let Ok(v) = s0.view(*fid)
                && let ViewBody::Live(m) = &v.body
                && m.ftype == FileType::Regular
                && m.size >= TOKEN_LEN as u64
                && let Ok((_, data, _)) = s0.read(*fid, 0, TOKEN_LEN as u32)
            {
                let mut t = [0u8; TOKEN_LEN];
                t.copy_from_slice(&data);
                tokens.insert(t);
            }
        }
        for (fid, t, acked_at) in &self.oracle.acked_writes {
            // Replaced: a later write to the file was applied where this one had been, or
            // anywhere after this one was acknowledged (by then it was on the whole AVSG).
            let on_top = self.oracle.token_applied.get(t).is_some_and(|places| {
                places.iter().any(|(r, o)| {
                    self.oracle
                        .applied_writes
                        .get(&(*r, *fid))
                        .is_some_and(|orders| orders.iter().any(|x| x > o))
                })
            });
            let after_ack = self
                .oracle
                .applied_writes
                .iter()
                .any(|((_, f), orders)| f == fid && orders.iter().any(|x| x > acked_at));
            let replaced = on_top || after_ack;
            let deleted = self.oracle.applied_deletes.contains(fid);
            anyhow::ensure!(
                tokens.contains(t) || replaced || deleted || self.oracle.copy_removed,
                "acknowledged write to {fid} lost (token {t:?})\n{}",
                self.history_of_fid(*fid)
            );
        }
        Ok(())
    }
}
