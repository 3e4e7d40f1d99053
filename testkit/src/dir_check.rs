//! The checker's rules for one worker's directory, apart from how it was read: a name an
//! acknowledged operation left must hold exactly that state (or, when resolution kept
//! concurrent versions, be among its name's versions); a name an unacknowledged operation
//! touched, one of the states it may have left; a removed name must be gone; every conflict
//! copy must hold a state its file once had; no other name may appear; hard links must be
//! one file.

use crate::dir_model::{DirModel, Expect, State};
use std::collections::{BTreeMap, BTreeSet};

/// What the endpoint shows for one name.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub fileid: u64,
    pub state: State,
}

/// What the checker read and what it found wrong.
#[derive(Debug, Default)]
pub struct Report {
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
pub const MARK: &str = ".conflict-";

/// `name` without the conflict suffixes (`.conflict-` and 8 hex digits, perhaps several).
pub fn base_name(name: &str) -> Option<&str> {
    let at = name.find(MARK)?;
    Some(&name[..at])
}

/// The conflict copies in `found`, by the name they are copies of.
pub fn copies_by_base(found: &BTreeMap<String, Found>) -> BTreeMap<String, Vec<(String, State)>> {
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

/// Compares what directory `label` holds (`found`, by name) with `model`: see the
/// module's rules.
pub fn compare_dir(
    found: &BTreeMap<String, Found>,
    model: &DirModel,
    label: &str,
    report: &mut Report,
) {
    let copies = copies_by_base(found);
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
