//! Clients shipping their logs to the servers: batches that may be lost on the way there or
//! back, the servers' answers recorded in the oracle, and the second phase that follows.

use super::{TOKEN_LEN, World, show};
use codetta_client::replicate::{Completed, exclusive_undo};
use codetta_server::store::Shipment;
use codetta_wire::update::{CreateHow, Follows, Op, UpdateRecord};
use codetta_wire::{FsError, RecordOutcome};
use rand::Rng;

impl World {
    /// One batch from a random client to a random member.
    pub(crate) fn ship_some(&mut self) {
        let c = self.rng.random_range(0..self.clients.len());
        let m = self.rng.random_range(0..self.servers.len());
        let loss = self.loss;
        self.ship(c, m, loss);
    }

    pub(crate) fn ship(&mut self, c: usize, m: usize, loss: f64) {
        // Every delivery is its own moment (the oracle orders applies after acks).
        self.step += 1;
        let Some(sh) = self.clients[c].shipping.as_mut() else {
            return;
        };
        let max = 1 + (self.step % 8) as usize;
        let Some(plan) = sh.plan(m, max, true) else {
            return;
        };
        let front = sh.front();
        let reachable = self.client_links[c][m];
        let store = self.servers[m].store.clone();
        let lost_request = self.rng.random_bool(loss);
        let lost_reply = self.rng.random_bool(loss);
        let (records, data): (Vec<UpdateRecord>, Vec<u8>) = {
            let client = &self.clients[c];
            let start = usize::try_from(plan.first.saturating_sub(front)).unwrap_or(0);
            let mut data = Vec::new();
            let records = client
                .log
                .iter()
                .skip(start)
                .take(plan.len())
                .map(|(r, d)| {
                    data.extend_from_slice(d);
                    r.clone()
                })
                .collect();
            (records, data)
        };
        let follows: Vec<Follows> = records
            .iter()
            .map(|r| {
                self.clients[c]
                    .follows
                    .get(&r.id.seq)
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        let outcome = match (&store, reachable && !lost_request) {
            (Some(store), true) => store
                .ship(&Shipment {
                    records: &records,
                    data: &data,
                    log_start: plan.log_start,
                    cop2: &plan.cop2,
                    follows: &follows,
                })
                .ok(),
            _ => None,
        };
        if let Some(shipped) = &outcome {
            for (r, o) in records.iter().zip(&shipped.outcomes) {
                self.note(format!(
                    "c{c} s{m} applied {}:{} {} -> {o:?}",
                    r.id.incarnation.0,
                    r.id.seq,
                    show(&r.op)
                ));
                self.note_applied(m, r, o);
            }
        }
        let done = {
            let Some(sh) = self.clients[c].shipping.as_mut() else {
                return;
            };
            match outcome {
                Some(s) if !lost_reply => sh.applied(m, &plan, &s.outcomes, &s.priors),
                _ => {
                    self.report.faults += 1;
                    sh.failed(m, Some(plan))
                }
            }
        };
        self.complete(c, done);
    }

    /// A replica applied `record` with `outcome`.
    pub(crate) fn note_applied(
        &mut self,
        replica: usize,
        record: &UpdateRecord,
        outcome: &RecordOutcome,
    ) {
        if outcome.is_err() {
            return;
        }
        self.oracle.applications += 1;
        let step = self.oracle.applications;
        match &record.op {
            Op::Remove { fid, name, .. } | Op::Rmdir { fid, name, .. } => {
                self.oracle.applied_deletes.insert(*fid);
                if name.to_string().contains(".conflict-") {
                    self.oracle.copy_removed = true;
                }
            }
            Op::Rename {
                replaces,
                fid,
                from_name,
                ..
            } => {
                if let Some(r) = replaces
                    && r != fid
                {
                    self.oracle.applied_deletes.insert(*r);
                }
                if from_name.to_string().contains(".conflict-") {
                    self.oracle.renamed_from_conflict.insert(*fid);
                }
            }
            Op::Write { fid, .. } => {
                self.oracle
                    .applied_writes
                    .entry((replica, *fid))
                    .or_default()
                    .push(step);
                if let Some((_, data)) = self
                    .clients
                    .iter()
                    .flat_map(|c| c.log.iter())
                    .find(|(r, _)| r.id == record.id)
                {
                    let mut t = [0u8; TOKEN_LEN];
                    t.copy_from_slice(&data[..TOKEN_LEN]);
                    self.oracle
                        .token_applied
                        .entry(t)
                        .or_default()
                        .push((replica, step));
                }
            }
            Op::SetAttr { fid, set } if set.size.is_some() => {
                self.oracle
                    .applied_writes
                    .entry((replica, *fid))
                    .or_default()
                    .push(step);
            }
            Op::Create {
                how: CreateHow::Unchecked { truncate: true },
                ..
            } => {}
            _ => {}
        }
    }

    /// Records completed by client `c`: acknowledged (the oracle notes them), dropped from
    /// its log; exclusive creates some replica refused are undone (rule 9).
    pub(crate) fn complete(&mut self, c: usize, done: Vec<Completed>) {
        for d in done {
            let Some((record, data)) = self.clients[c].log.pop_front() else {
                continue;
            };
            self.note(format!(
                "c{c} complete {}:{} {} -> {:?} answers {:?}",
                record.id.incarnation.0,
                record.id.seq,
                show(&record.op),
                d.outcome,
                d.answers
            ));
            debug_assert_eq!(record.id.seq, d.seq);
            let client = &mut self.clients[c];
            let follows = client.follows.remove(&d.seq).unwrap_or_default();
            if !d.answers.is_empty() && d.answers.iter().all(|(_, o)| o.is_err()) {
                client
                    .chains
                    .unlink_record(&record.op, record.id.incarnation, d.seq, follows);
            } else {
                for object in record.op.chained() {
                    let newest = client.applied_newest.entry(object).or_default();
                    *newest = (*newest).max(d.seq);
                }
            }
            if d.divergent || d.answers.iter().any(|(_, o)| *o == Err(FsError::Diverged)) {
                self.to_resolve
                    .extend(codetta_client::tracker::affected(&record.op));
                if let Op::Remove { fid, .. } | Op::Rmdir { fid, .. } | Op::Rename { fid, .. } =
                    &record.op
                {
                    self.to_resolve.push(*fid);
                }
            }
            if let Some(undo) = exclusive_undo(&record.op, &d.answers) {
                self.record(c, undo, Vec::new());
                continue;
            }
            let Ok(answer) = d.outcome else {
                continue;
            };
            self.oracle.acked += 1;
            match &record.op {
                Op::Create { fid, .. }
                | Op::Mkdir { fid, .. }
                | Op::Symlink { fid, .. }
                | Op::Mknod { fid, .. } => {
                    if answer == Some(*fid) {
                        self.oracle.acked_creates.insert(*fid);
                    }
                }
                Op::Remove { fid, .. } | Op::Rmdir { fid, .. } => {
                    if !self.oracle.linked.contains(fid) {
                        self.oracle.acked_deletes.insert(*fid);
                    }
                }
                Op::Rename { fid, replaces, .. } => {
                    if let Some(r) = replaces
                        && r != fid
                        && !self.oracle.linked.contains(r)
                    {
                        self.oracle.acked_deletes.insert(*r);
                    }
                }
                Op::Write { fid, .. } => {
                    let mut t = [0u8; TOKEN_LEN];
                    t.copy_from_slice(&data[..TOKEN_LEN]);
                    self.oracle
                        .acked_writes
                        .push((*fid, t, self.oracle.applications));
                }
                Op::SetAttr { .. } | Op::Link { .. } => {}
            }
        }
    }
}
