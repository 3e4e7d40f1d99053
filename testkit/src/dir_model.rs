//! The record of one worker's directory: what every acknowledged operation left there, and
//! for each name an unacknowledged operation touched, every state it may have left.
//!
//! An operation whose answer never came (an error, JUKEBOX, a cut connection, a daemon
//! killed under it) may be applied later: the client daemon's modify log ships it when it
//! can. So the names it touched are *retired*: the worker never uses them again, and the
//! checker accepts for each any state it had before or after that operation. Names are
//! never reused (a counter), so a late operation cannot land on a name in use.

use std::collections::{BTreeMap, BTreeSet};

/// An object of the directory (one file, however many names it has).
pub type Ino = u32;

/// What a file holds that the checker compares: its bytes (by digest) and its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct State {
    pub hash: [u8; 32],
    pub len: u64,
    pub mode: u32,
}

impl State {
    pub fn of(data: &[u8], mode: u32) -> State {
        State {
            hash: *blake3::hash(data).as_bytes(),
            len: data.len() as u64,
            mode,
        }
    }

    /// Equal bytes, whatever the modes.
    pub fn same_bytes(&self, other: &State) -> bool {
        self.hash == other.hash && self.len == other.len
    }
}

/// One operation a worker runs in its own directory.
#[derive(Clone, Debug)]
pub enum Op {
    /// CREATE (UNCHECKED, mode 0644) of a new name.
    Create { name: String },
    /// WRITEs to a file: FILE_SYNC each, or UNSTABLE then a COMMIT (acknowledged only
    /// when the COMMIT's verifier is the writes' verifier).
    Write {
        name: String,
        pieces: Vec<(u64, Vec<u8>)>,
        stable: bool,
    },
    /// SETATTR of the size.
    Truncate { name: String, size: u64 },
    /// SETATTR of the mode.
    Chmod { name: String, mode: u32 },
    /// RENAME within the directory, onto a new name or over an existing file.
    Rename { from: String, to: String },
    /// REMOVE.
    Remove { name: String },
    /// LINK: a further name for a file.
    Link { name: String, new: String },
}

impl Op {
    /// The operation as the steps that may land separately: one per WRITE.
    fn steps(&self) -> Vec<Op> {
        match self {
            Op::Write {
                name,
                pieces,
                stable,
            } => pieces
                .iter()
                .map(|p| Op::Write {
                    name: name.clone(),
                    pieces: vec![p.clone()],
                    stable: *stable,
                })
                .collect(),
            other => vec![other.clone()],
        }
    }
}

/// A file's contents and mode, and every state it has had (a conflict copy must be one).
#[derive(Clone, Debug)]
struct File {
    data: Vec<u8>,
    mode: u32,
    history: BTreeSet<([u8; 32], u64)>,
}

impl File {
    fn state(&self) -> State {
        State::of(&self.data, self.mode)
    }

    fn remember(&mut self) {
        let s = self.state();
        self.history.insert((s.hash, s.len));
    }
}

/// What the checker accepts for a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The name holds exactly this.
    Is(State),
    /// The name is gone (an acknowledged remove, or renamed away).
    Gone,
    /// An unacknowledged operation touched it: any of these (`None`: absent).
    OneOf(Vec<Option<State>>),
}

/// One worker's directory as the worker's acknowledged operations made it.
#[derive(Debug, Default)]
pub struct DirModel {
    /// Names in use, each certain.
    names: BTreeMap<String, Ino>,
    files: BTreeMap<Ino, File>,
    /// Names an unacknowledged operation touched, with what each may hold.
    retired: BTreeMap<String, Vec<Option<State>>>,
    /// Names removed or renamed away by an acknowledged operation.
    gone: BTreeSet<String>,
    /// Every name ever given, and every file that had it (to judge conflict copies: a
    /// file renamed over may come back as a copy under the name it lost).
    ever: BTreeMap<String, BTreeSet<Ino>>,
    next_name: u64,
    next_ino: Ino,
    /// Operations acknowledged and not.
    pub acked: u64,
    pub uncertain: u64,
}

impl DirModel {
    /// A name never used in this directory.
    pub fn fresh_name(&mut self, prefix: &str) -> String {
        self.next_name += 1;
        format!("{prefix}{}", self.next_name)
    }

    /// The names in use (certain), in order.
    pub fn live(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    /// Whether two names in use are one file.
    pub fn same_file(&self, a: &str, b: &str) -> bool {
        self.names
            .get(a)
            .is_some_and(|i| self.names.get(b) == Some(i))
    }

    /// The current size of a name in use.
    pub fn size(&self, name: &str) -> u64 {
        self.names
            .get(name)
            .and_then(|i| self.files.get(i))
            .map_or(0, |f| f.data.len() as u64)
    }

    /// Records `op`'s outcome: applied for certain (`acked`), or perhaps (now or later).
    pub fn settle(&mut self, op: &Op, acked: bool) {
        if acked {
            self.acked += 1;
            self.apply(op);
            return;
        }
        self.uncertain += 1;
        let touched = self.touched(op);
        let mut outcomes: Vec<Vec<Option<State>>> =
            touched.iter().map(|n| vec![self.state_of(n)]).collect();
        // UNSTABLE writes ship in order, so a part of them may have landed: every prefix.
        for step in op.steps() {
            self.apply(&step);
            for (name, seen) in touched.iter().zip(outcomes.iter_mut()) {
                let after = self.state_of(name);
                if !seen.contains(&after) {
                    seen.push(after);
                }
            }
        }
        for (name, outcomes) in touched.iter().zip(outcomes) {
            self.names.remove(name);
            self.gone.remove(name);
            self.retired.insert(name.clone(), outcomes);
        }
    }

    /// Every name whose state `op` may change: its own names and every other name of a
    /// file it changes.
    fn touched(&self, op: &Op) -> Vec<String> {
        let own: Vec<&String> = match op {
            Op::Create { name }
            | Op::Write { name, .. }
            | Op::Truncate { name, .. }
            | Op::Chmod { name, .. }
            | Op::Remove { name } => vec![name],
            Op::Rename { from, to } => vec![from, to],
            Op::Link { name, new } => vec![name, new],
        };
        let inos: BTreeSet<Ino> = own
            .iter()
            .filter_map(|n| self.names.get(*n))
            .copied()
            .collect();
        let mut names: BTreeSet<String> = own.into_iter().cloned().collect();
        names.extend(
            self.names
                .iter()
                .filter(|(_, i)| inos.contains(i))
                .map(|(n, _)| n.clone()),
        );
        names.into_iter().collect()
    }

    fn state_of(&self, name: &str) -> Option<State> {
        let ino = self.names.get(name)?;
        self.files.get(ino).map(File::state)
    }

    fn file_mut(&mut self, name: &str) -> Option<&mut File> {
        let ino = self.names.get(name)?;
        self.files.get_mut(ino)
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create { name } => {
                if self.names.contains_key(name) {
                    return; // UNCHECKED over an existing name (never generated)
                }
                self.next_ino += 1;
                let mut file = File {
                    data: Vec::new(),
                    mode: 0o644,
                    history: BTreeSet::new(),
                };
                file.remember();
                self.files.insert(self.next_ino, file);
                self.names.insert(name.clone(), self.next_ino);
                self.ever
                    .entry(name.clone())
                    .or_default()
                    .insert(self.next_ino);
            }
            Op::Write { name, pieces, .. } => {
                if let Some(f) = self.file_mut(name) {
                    for (offset, data) in pieces {
                        let end = *offset as usize + data.len();
                        if f.data.len() < end {
                            f.data.resize(end, 0);
                        }
                        f.data[*offset as usize..end].copy_from_slice(data);
                    }
                    f.remember();
                }
            }
            Op::Truncate { name, size } => {
                if let Some(f) = self.file_mut(name) {
                    f.data.resize(*size as usize, 0);
                    f.remember();
                }
            }
            Op::Chmod { name, mode } => {
                if let Some(f) = self.file_mut(name) {
                    f.mode = *mode;
                }
            }
            Op::Rename { from, to } => {
                if let Some(ino) = self.names.remove(from) {
                    self.names.insert(to.clone(), ino);
                    self.ever.entry(to.clone()).or_default().insert(ino);
                    self.gone.insert(from.clone());
                    self.gone.remove(to);
                }
            }
            Op::Remove { name } => {
                if self.names.remove(name).is_some() {
                    self.gone.insert(name.clone());
                }
            }
            Op::Link { name, new } => {
                if let Some(&ino) = self.names.get(name) {
                    self.names.insert(new.clone(), ino);
                    self.ever.entry(new.clone()).or_default().insert(ino);
                }
            }
        }
    }

    /// What the checker accepts for every name this directory ever had.
    pub fn expectations(&self) -> BTreeMap<String, Expect> {
        let mut out = BTreeMap::new();
        for name in &self.gone {
            out.insert(name.clone(), Expect::Gone);
        }
        for (name, outcomes) in &self.retired {
            out.insert(name.clone(), Expect::OneOf(outcomes.clone()));
        }
        for name in self.names.keys() {
            if let Some(s) = self.state_of(name) {
                out.insert(name.clone(), Expect::Is(s));
            }
        }
        out
    }

    /// Whether `state` is one a file that was ever named `name` has had (what a conflict
    /// copy of it may hold).
    pub fn had(&self, name: &str, state: &State) -> bool {
        self.ever.get(name).is_some_and(|inos| {
            inos.iter()
                .filter_map(|i| self.files.get(i))
                .any(|f| f.history.contains(&(state.hash, state.len)))
        })
    }

    /// Groups of names in use that are one file (hard links): they must share a file id.
    pub fn linked(&self) -> Vec<Vec<String>> {
        let mut by_ino: BTreeMap<Ino, Vec<String>> = BTreeMap::new();
        for (n, i) in &self.names {
            by_ino.entry(*i).or_default().push(n.clone());
        }
        by_ino.into_values().filter(|v| v.len() > 1).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, offset: u64, data: &[u8]) -> Op {
        Op::Write {
            name: name.into(),
            pieces: vec![(offset, data.to_vec())],
            stable: true,
        }
    }

    #[test]
    fn acknowledged_operations_are_certain() {
        let mut m = DirModel::default();
        m.settle(&Op::Create { name: "a".into() }, true);
        m.settle(&write("a", 2, b"xy"), true);
        m.settle(
            &Op::Link {
                name: "a".into(),
                new: "b".into(),
            },
            true,
        );
        m.settle(
            &Op::Rename {
                from: "a".into(),
                to: "c".into(),
            },
            true,
        );
        let e = m.expectations();
        assert_eq!(e["a"], Expect::Gone);
        assert_eq!(e["b"], Expect::Is(State::of(b"\0\0xy", 0o644)));
        assert_eq!(e["c"], e["b"]);
        assert_eq!(m.linked(), vec![vec!["b".to_string(), "c".to_string()]]);
        assert!(m.had("a", &State::of(b"", 0o644)));
        assert!(!m.had("a", &State::of(b"xy", 0o644)));
    }

    #[test]
    fn a_name_remembers_every_file_that_had_it() {
        let mut m = DirModel::default();
        m.settle(&Op::Create { name: "a".into() }, true);
        m.settle(&write("a", 0, b"first"), true);
        m.settle(&Op::Create { name: "b".into() }, true);
        m.settle(
            &Op::Rename {
                from: "b".into(),
                to: "a".into(),
            },
            true,
        );
        assert!(
            m.had("a", &State::of(b"first", 0o644)),
            "the file renamed over"
        );
        assert!(m.had("a", &State::of(b"", 0o644)));
    }

    #[test]
    fn an_unanswered_write_retires_every_name_of_its_file() {
        let mut m = DirModel::default();
        m.settle(&Op::Create { name: "a".into() }, true);
        m.settle(
            &Op::Link {
                name: "a".into(),
                new: "b".into(),
            },
            true,
        );
        m.settle(&write("b", 0, b"new"), false);
        let e = m.expectations();
        let both = Expect::OneOf(vec![
            Some(State::of(b"", 0o644)),
            Some(State::of(b"new", 0o644)),
        ]);
        assert_eq!(e["a"], both);
        assert_eq!(e["b"], both);
        assert!(m.live().is_empty());
    }

    #[test]
    fn an_unanswered_rename_may_or_may_not_have_happened() {
        let mut m = DirModel::default();
        m.settle(&Op::Create { name: "a".into() }, true);
        m.settle(
            &Op::Rename {
                from: "a".into(),
                to: "z".into(),
            },
            false,
        );
        let e = m.expectations();
        let s = State::of(b"", 0o644);
        assert_eq!(e["a"], Expect::OneOf(vec![Some(s), None]));
        assert_eq!(e["z"], Expect::OneOf(vec![None, Some(s)]));
    }
}
