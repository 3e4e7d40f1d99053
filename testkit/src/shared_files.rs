//! Files every worker writes, whole, concurrently: the record of those writes and the
//! rules the files' read-back must meet. Each version found (under the name or as a
//! conflict copy) must be bytes some write put there; a file is never lost; and a last
//! write that began after every other write to its file had ended, with none unanswered,
//! must be among its versions (concurrent writes may each be kept as a version).

use crate::dir_check::{Found, Report, base_name, copies_by_base};
use crate::dir_model::State;
use rand::RngCore;
use rand::rngs::StdRng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Size of a shared file; every write to one replaces it whole.
pub const SHARED_SIZE: usize = 4096;

/// One write to a shared file.
#[derive(Clone, Debug)]
pub struct SharedWrite {
    pub file: usize,
    /// The worker, and its count of shared writes (both also in the data's first bytes).
    pub who: String,
    pub seq: u64,
    pub hash: [u8; 32],
    /// When it began and ended, from one zero for every worker.
    pub started: Duration,
    pub ended: Duration,
    pub acked: bool,
}

/// Contents of shared-file writes: `who` and `seq` in the first bytes, seeded bytes after.
pub fn shared_content(who: &str, seq: u64, rng: &mut StdRng) -> Vec<u8> {
    let mut data = vec![0u8; SHARED_SIZE];
    rng.fill_bytes(&mut data);
    let tag = format!("{who} write {seq};");
    data[..tag.len()].copy_from_slice(tag.as_bytes());
    data
}

/// Compares the shared files (`s0`, `s1`, ... as `found` in their directory, first holding
/// `initial`) with every write made to them.
pub fn compare_shared(
    found: &BTreeMap<String, Found>,
    initial: &[[u8; 32]],
    writes: &[SharedWrite],
    report: &mut Report,
) {
    let copies = copies_by_base(found);
    for (i, first) in initial.iter().enumerate() {
        let name = format!("s{i}");
        let mine: Vec<&SharedWrite> = writes.iter().filter(|w| w.file == i).collect();
        let allowed: BTreeSet<[u8; 32]> = mine
            .iter()
            .map(|w| w.hash)
            .chain(std::iter::once(*first))
            .collect();
        let versions: Vec<State> = found
            .get(&name)
            .map(|f| f.state)
            .into_iter()
            .chain(copies.get(&name).into_iter().flatten().map(|(_, s)| *s))
            .collect();
        if versions.is_empty() {
            report.failures.push(format!("shared/{name}: lost"));
        }
        for v in &versions {
            if v.len != SHARED_SIZE as u64 || !allowed.contains(&v.hash) {
                report.failures.push(format!(
                    "shared/{name}: holds {} bytes no write to it put there",
                    v.len
                ));
            }
        }
        // The last write, when it began after every other ended and none went unanswered
        // (an unanswered one may land later), must be visible.
        let settled = mine.iter().all(|w| w.acked);
        if let Some(last) = mine.iter().max_by_key(|w| w.started)
            && settled
            && mine
                .iter()
                .all(|w| std::ptr::eq(*w, *last) || w.ended < last.started)
            && !versions.iter().any(|v| v.hash == last.hash)
        {
            let zero = writes
                .iter()
                .map(|w| w.started)
                .min()
                .unwrap_or(last.started);
            let at = |t: Duration| t.saturating_sub(zero).as_secs_f64();
            let found: Vec<String> = versions
                .iter()
                .map(|v| match mine.iter().find(|w| w.hash == v.hash) {
                    Some(w) => format!(
                        "{} write {} ({:.2}..{:.2} s)",
                        w.who,
                        w.seq,
                        at(w.started),
                        at(w.ended)
                    ),
                    None => "the initial bytes".to_string(),
                })
                .collect();
            report.failures.push(format!(
                "shared/{name}: the last acknowledged write ({} write {}, {:.2}..{:.2} s from \
                 the first shared write) is in none of its {} versions: {}",
                last.who,
                last.seq,
                at(last.started),
                at(last.ended),
                versions.len(),
                found.join(", ")
            ));
        }
        report.names += 1;
    }
    for name in found.keys() {
        let base = base_name(name).unwrap_or(name);
        let known = base
            .strip_prefix('s')
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n < initial.len());
        if !known {
            report
                .failures
                .push(format!("shared/{name}: a name no operation made"));
        }
    }
    report.shared_conflicts += copies.values().map(Vec::len).sum::<usize>();
}
