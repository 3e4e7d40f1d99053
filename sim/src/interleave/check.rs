//! The read-back: a fresh client per server, cut off from the others, reads every
//! worker's directory and the shared files from that replica alone; the replicas must
//! show the same, and the first one's view is compared with the record.

use super::World;
use super::client_node::ClientNode;
use super::worker::Worker;
use codetta_client::volume_client::VolumeClient;
use codetta_testkit::dir_check::{Found, Report, compare_dir};
use codetta_testkit::dir_model::State;
use codetta_testkit::shared_files::{SharedWrite, compare_shared};
use codetta_wire::{Fid, MAX_READ};
use std::collections::BTreeMap;

impl World {
    /// Reads every worker's directory from each replica alone and compares.
    pub(super) async fn check(
        &mut self,
        workers: &[Worker],
        shared_dir: Fid,
        initial: &[[u8; 32]],
        writes: &[SharedWrite],
    ) -> anyhow::Result<()> {
        let mut labels: Vec<String> = workers.iter().map(|w| w.label.clone()).collect();
        labels.push("shared".to_string());
        let mut dirs: Vec<Fid> = workers.iter().map(|w| w.dir).collect();
        dirs.push(shared_dir);
        let mut first: Option<(String, Vec<BTreeMap<String, Found>>)> = None;
        let Some(volume) = self.current_volume() else {
            anyhow::bail!("no server's catalogue has the volume");
        };
        self.volume = volume.clone();
        for member in &volume.vsg {
            let server = member.server.clone();
            let name = format!("check-{server}");
            for other in &self.entries {
                if other.name != server {
                    self.net.cut(&name, &other.name);
                }
            }
            let mut checker = ClientNode::new(&name, self._dir.path().join(&name), &self.entries);
            checker.start(&self.net, &self.volume).await?;
            let Some(vc) = checker.running.clone() else {
                anyhow::bail!("the checker did not start");
            };
            let mut views = Vec::new();
            for (dir, label) in dirs.iter().zip(&labels) {
                let found = self.read_dir(&vc, *dir, label).await;
                for (name, f) in &found {
                    self.views_digest.update(name.as_bytes());
                    self.views_digest.update(&f.fileid.to_le_bytes());
                    self.views_digest.update(&f.state.hash);
                }
                views.push(found);
            }
            checker.crash(&self.net);
            match &first {
                None => first = Some((server, views)),
                Some((first_server, first_views)) => {
                    for (label, (a, b)) in labels.iter().zip(first_views.iter().zip(&views)) {
                        let differ = differences(a, b);
                        if !differ.is_empty() {
                            self.report.failures.push(format!(
                                "{label}: replicas differ ({first_server} against {server}): {}",
                                differ.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        if let Some((_, views)) = first {
            let mut report = Report::default();
            for (w, found) in workers.iter().zip(&views) {
                compare_dir(found, &w.model, &w.label, &mut report);
            }
            if let Some(found) = views.last() {
                compare_shared(found, initial, writes, &mut report);
            }
            self.report.shared_conflicts = report.shared_conflicts;
            self.report.shared_writes = writes.len() as u64;
            self.report.shared_acked = writes.iter().filter(|w| w.acked).count() as u64;
            self.report.names += report.names;
            // One writer per directory: a conflict copy there is a conflict the record
            // does not show.
            for copy in &report.own_conflicts {
                self.report
                    .failures
                    .push(format!("{copy}: a conflict copy where one worker wrote"));
            }
            self.report.own_conflicts.extend(report.own_conflicts);
            self.report.failures.extend(report.failures);
        }
        Ok(())
    }

    async fn read_dir(
        &mut self,
        vc: &VolumeClient,
        dir: Fid,
        label: &str,
    ) -> BTreeMap<String, Found> {
        let mut out = BTreeMap::new();
        let mut cookie = 0;
        loop {
            let (entries, eof) = match vc.readdir(&dir, cookie, 512, false).await {
                Ok(page) => page,
                Err(e) => {
                    self.report.failures.push(format!("{label}: listing: {e}"));
                    return out;
                }
            };
            for entry in &entries {
                match read_file(vc, &entry.fid).await {
                    Ok((mode, data)) => {
                        self.report.bytes += data.len() as u64;
                        out.insert(
                            entry.name.to_string(),
                            Found {
                                fileid: entry.fid.vnode ^ (u64::from(entry.fid.unique) << 40),
                                state: State::of(&data, mode & 0o7777),
                            },
                        );
                    }
                    Err(e) => self
                        .report
                        .failures
                        .push(format!("{label}/{}: reading: {e}", entry.name)),
                }
            }
            match entries.last() {
                Some(last) if !eof => cookie = last.cookie,
                _ => return out,
            }
        }
    }
}

/// Where two replicas' views of one directory differ (at most 10 names).
fn differences(a: &BTreeMap<String, Found>, b: &BTreeMap<String, Found>) -> Vec<String> {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| match (a.get(n), b.get(n)) {
            (Some(x), Some(y)) if x.state == y.state => None,
            (Some(_), Some(_)) => Some(format!("{n} holds other bytes or mode")),
            (Some(_), None) => Some(format!("{n} only on the first")),
            (None, _) => Some(format!("{n} only on the second")),
        })
        .take(10)
        .collect()
}

/// A file's mode and whole contents.
async fn read_file(
    vc: &VolumeClient,
    fid: &Fid,
) -> Result<(u32, Vec<u8>), codetta_client::error::ClientError> {
    let attrs = vc.getattr(fid).await?;
    let mut data = Vec::new();
    loop {
        let (_, chunks, eof) = vc.read(fid, data.len() as u64, MAX_READ).await?;
        let before = data.len();
        for c in chunks {
            data.extend_from_slice(&c);
        }
        if eof || data.len() == before {
            break;
        }
    }
    data.truncate(usize::try_from(attrs.size).unwrap_or(usize::MAX));
    Ok((attrs.mode, data))
}
