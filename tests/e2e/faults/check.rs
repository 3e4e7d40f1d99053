//! The checker: reads every file back through a fresh client daemon and compares it with
//! the record. A name an acknowledged operation left must hold exactly that state (or, when
//! resolution kept concurrent versions, be among its name's versions); a name an
//! unacknowledged operation touched, one of the states it may have left; a removed name must
//! be gone; every conflict copy must hold a state its file once had; no other name may
//! appear; hard links must be one file.

use super::driver::{SHARED_SIZE, SharedWrite};
use super::model::{DirModel, Expect, State};
use crate::support::nfs::{Fh, Nfs};
use std::collections::{BTreeMap, BTreeSet};

/// What the endpoint shows for one name.
#[derive(Clone, Copy, Debug)]
struct Found {
    fileid: u64,
    state: State,
}

/// What the checker read and what it found wrong.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Names compared with the record.
    pub names: u64,
    /// Bytes read back and compared.
    pub bytes: u64,
    /// Conflict copies found in the workers' own directories, where one worker writes
    /// (each compared with its file's history), with the names they are copies of.
    pub own_conflicts: Vec<String>,
    /// Conflict copies of the shared files (concurrent writers: expected).
    pub shared_conflicts: usize,
    pub failures: Vec<String>,
}

/// The conflict mark resolution puts in a copy's name.
const MARK: &str = ".conflict-";

/// `name` without the conflict suffixes (`.conflict-` and 8 hex digits, perhaps several).
fn base_name(name: &str) -> Option<&str> {
    let at = name.find(MARK)?;
    Some(&name[..at])
}

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

/// The conflict copies in `found`, by the name they are copies of.
fn copies_by_base(found: &BTreeMap<String, Found>) -> BTreeMap<String, Vec<(String, State)>> {
    let mut copies: BTreeMap<String, Vec<(String, State)>> = BTreeMap::new();
    for (name, f) in found {
        if let Some(base) = base_name(name) {
            copies
                .entry(base.to_string())
                .or_default()
                .push((name.clone(), f.state));
        }
    }
    copies
}

fn short(s: &Option<State>) -> String {
    match s {
        None => "absent".into(),
        Some(s) => format!(
            "{} bytes {:02x}{:02x}{:02x}{:02x} mode {:o}",
            s.len, s.hash[0], s.hash[1], s.hash[2], s.hash[3], s.mode
        ),
    }
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
    let copies = copies_by_base(&found);
    let expect = model.expectations();
    let mut fail = |what: String| report.failures.push(format!("{label}/{what}"));
    for (name, e) in &expect {
        let here = found.get(name).map(|f| f.state);
        let versions: Vec<State> = here
            .iter()
            .copied()
            .chain(copies.get(name).into_iter().flatten().map(|(_, s)| *s))
            .collect();
        let has_copies = copies.contains_key(name);
        if has_copies {
            for v in &versions {
                if !model.had(name, v) {
                    fail(format!(
                        "{name}: a version ({}) its file never had",
                        short(&Some(*v))
                    ));
                }
            }
        }
        match e {
            Expect::Is(s) if !has_copies => {
                if here != Some(*s) {
                    fail(format!(
                        "{name}: acknowledged {}, read {}",
                        short(&Some(*s)),
                        short(&here)
                    ));
                }
            }
            Expect::Is(s) => {
                if !versions.iter().any(|v| v.same_bytes(s)) {
                    fail(format!(
                        "{name}: acknowledged {} is in none of its {} versions",
                        short(&Some(*s)),
                        versions.len()
                    ));
                }
            }
            Expect::Gone => {
                if here.is_some() {
                    fail(format!("{name}: removed or renamed away, still there"));
                }
            }
            Expect::OneOf(outcomes) if !has_copies => {
                if !outcomes.contains(&here) {
                    let may: Vec<String> = outcomes.iter().map(short).collect();
                    fail(format!(
                        "{name}: read {}, may be only {}",
                        short(&here),
                        may.join(" or ")
                    ));
                }
            }
            Expect::OneOf(_) => {}
        }
    }
    for name in found.keys() {
        let known = match base_name(name) {
            Some(base) => expect.contains_key(base),
            None => expect.contains_key(name),
        };
        if !known {
            fail(format!("{name}: a name no operation made"));
        }
    }
    for group in model.linked() {
        if group.iter().any(|n| copies.contains_key(n)) {
            continue;
        }
        let ids: BTreeSet<u64> = group
            .iter()
            .filter_map(|n| found.get(n).map(|f| f.fileid))
            .collect();
        if ids.len() > 1 {
            fail(format!(
                "{group:?}: hard links of one file, read as {} files",
                ids.len()
            ));
        }
    }
    report.names += expect.len() as u64;
    for (base, list) in &copies {
        for (name, _) in list {
            report
                .own_conflicts
                .push(format!("{label}/{name} (of {base})"));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::base_name;

    #[test]
    fn conflict_copies_name_their_file() {
        assert_eq!(base_name("f12.conflict-0a1b2c3d"), Some("f12"));
        assert_eq!(
            base_name("f12.conflict-0a1b2c3d.conflict-99999999"),
            Some("f12")
        );
        assert_eq!(base_name("f12"), None);
    }
}
