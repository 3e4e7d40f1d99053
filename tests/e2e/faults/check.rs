//! The checker: reads every file back through a fresh client daemon and compares it with
//! the record, by the rules of [`codetta_testkit::dir_check`] for the workers' own
//! directories and those of concurrent writers for the shared files.

use super::driver::{SHARED_SIZE, SharedWrite};
use crate::support::nfs::{Fh, Nfs};
use codetta_testkit::dir_check::{Found, Report, base_name, compare_dir, copies_by_base};
use codetta_testkit::dir_model::{DirModel, State};
use std::collections::{BTreeMap, BTreeSet};

async fn read_dir(nfs: &mut Nfs, dir: &Fh, report: &mut Report) -> BTreeMap<String, Found> {
    let mut out = BTreeMap::new();
    let names = match nfs.list(dir).await {
        Ok(n) => n,
        Err(e) => {
            report.failures.push(format!("listing a directory: {e:?}"));
            return out;
        }
    };
    for name in names {
        let read = async {
            let fh = nfs.lookup(dir, &name).await?;
            let attr = nfs.getattr(&fh).await?;
            let data = nfs.read_all(&fh).await?;
            Ok::<_, nfs3_client::nfs3_types::nfs3::nfsstat3>((attr, data))
        };
        match read.await {
            Ok((attr, data)) => {
                report.bytes += data.len() as u64;
                out.insert(
                    name,
                    Found {
                        fileid: attr.fileid,
                        state: State::of(&data, attr.mode & 0o7777),
                    },
                );
            }
            Err(e) => report.failures.push(format!("reading {name}: {e:?}")),
        }
    }
    out
}

/// Compares directory `label` (at `dir`) with `model`.
pub(crate) async fn check_dir(
    nfs: &mut Nfs,
    dir: &Fh,
    model: &DirModel,
    label: &str,
    report: &mut Report,
) {
    let found = read_dir(nfs, dir, report).await;
    compare_dir(&found, model, label, report);
}

/// Compares the shared files (`s0`, `s1`, ... in `dir`, first holding `initial`) with
/// every write made to them.
pub(crate) async fn check_shared(
    nfs: &mut Nfs,
    dir: &Fh,
    initial: &[[u8; 32]],
    writes: &[SharedWrite],
    report: &mut Report,
) {
    let found = read_dir(nfs, dir, report).await;
    let copies = copies_by_base(&found);
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
            let at = |t: std::time::Instant| t.duration_since(zero).as_secs_f64();
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
