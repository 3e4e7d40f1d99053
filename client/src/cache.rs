//! The client cache (rule 15): object states, names and file data fetched under callback
//! promises, answered locally while the promises hold. No I/O here: the VolumeClient decides when
//! its promises are trusted ([`crate::promises`]) and feeds breaks in.
//!
//! Fills race with breaks: a fetch takes a [`Cache::snapshot`] before it asks a server,
//! and what it brings back is kept only if nothing invalidated the object (or everything)
//! since. An object's names and data hang off its state: they go when it goes.

use bytes::Bytes;
use codetta_wire::message::ObjectState;
use codetta_wire::update::Op;
use codetta_wire::{ContentTag, Fid, Name};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Bytes of file data per cached block (the server's block size).
pub const CACHE_BLOCK: u64 = 64 << 10;
/// Invalidations remembered for fills in flight; a fill older than them is not kept.
const RECENT: usize = 4096;

/// How big the cache may grow.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// File data bytes.
    pub data_bytes: usize,
    /// Objects and names.
    pub entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            data_bytes: 256 << 20,
            entries: 200_000,
        }
    }
}

/// Hits and misses, for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    /// Hits that were file data.
    pub data_hits: u64,
    pub misses: u64,
    pub invalidations: u64,
}

#[derive(Debug, Default)]
struct Entry {
    state: Option<ObjectState>,
    /// A directory's names: the child, or `None` for "no such name".
    names: HashMap<Name, Option<Fid>>,
    /// File data by block index (each [`CACHE_BLOCK`] bytes but the last), with the tick
    /// it was last used at.
    blocks: BTreeMap<u64, (Bytes, u64)>,
}

/// The cache of one volume.
#[derive(Debug)]
pub struct Cache {
    limits: CacheLimits,
    entries: HashMap<Fid, Entry>,
    names: usize,
    data_bytes: usize,
    /// Data blocks by last use: tick -> (fid, block).
    lru: BTreeMap<u64, (Fid, u64)>,
    tick: u64,
    /// Invalidations so far, and the last [`RECENT`] of them (`None`: everything).
    seq: u64,
    recent: VecDeque<(u64, Option<Fid>)>,
    pub stats: CacheStats,
}

/// Every object an op may change: what the tracker predicts attributes for, and the
/// objects a remove or rename takes away or moves.
pub fn touched(op: &Op) -> Vec<Fid> {
    let mut fids = crate::tracker::affected(op);
    match op {
        Op::Rmdir { fid, .. } => fids.push(*fid),
        Op::Rename { fid, replaces, .. } => {
            fids.push(*fid);
            fids.extend(replaces);
        }
        _ => {}
    }
    fids
}

/// The names `op` changes: (directory, name, what the name leads to after it). `created`:
/// the fid a create resolved to, when known (an existing file's, if the name was there).
fn names_changed(op: &Op, created: Option<Fid>) -> Vec<(Fid, &Name, Option<Fid>)> {
    match op {
        Op::Create { dir, name, fid, .. }
        | Op::Mkdir { dir, name, fid, .. }
        | Op::Symlink { dir, name, fid, .. }
        | Op::Mknod { dir, name, fid, .. } => vec![(*dir, name, Some(created.unwrap_or(*fid)))],
        Op::Link { dir, name, fid } => vec![(*dir, name, Some(*fid))],
        Op::Remove { dir, name, .. } | Op::Rmdir { dir, name, .. } => vec![(*dir, name, None)],
        // Between two names of one file: the servers change nothing (POSIX).
        Op::Rename { fid, replaces, .. } if *replaces == Some(*fid) => Vec::new(),
        Op::Rename {
            from_dir,
            from_name,
            to_dir,
            to_name,
            fid,
            ..
        } => vec![(*from_dir, from_name, None), (*to_dir, to_name, Some(*fid))],
        Op::SetAttr { .. } | Op::Write { .. } => Vec::new(),
    }
}

impl Cache {
    pub fn new(limits: CacheLimits) -> Cache {
        Cache {
            limits,
            entries: HashMap::new(),
            names: 0,
            data_bytes: 0,
            lru: BTreeMap::new(),
            tick: 0,
            seq: 0,
            recent: VecDeque::new(),
            stats: CacheStats::default(),
        }
    }

    /// Where invalidations stand: a fill started now passes this to the `put_` calls.
    pub fn snapshot(&self) -> u64 {
        self.seq
    }

    /// Whether nothing invalidated `fid` since `since`.
    pub fn unbroken(&self, since: u64, fid: &Fid) -> bool {
        if since == self.seq {
            return true;
        }
        match self.recent.front() {
            Some((oldest, _)) if *oldest <= since + 1 => {}
            _ => return false,
        }
        !self
            .recent
            .iter()
            .any(|(n, f)| *n > since && f.is_none_or(|f| f == fid.object()))
    }

    fn note(&mut self, fid: Option<Fid>) {
        self.seq += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((self.seq, fid));
        self.stats.invalidations += 1;
    }

    fn drop_entry(&mut self, fid: &Fid) {
        if let Some(e) = self.entries.remove(&fid.object()) {
            self.names -= e.names.len();
            self.release(e.blocks);
        }
    }

    /// Accounts for data blocks leaving the cache.
    fn release(&mut self, blocks: BTreeMap<u64, (Bytes, u64)>) {
        for (_, (bytes, tick)) in blocks {
            self.data_bytes -= bytes.len();
            self.lru.remove(&tick);
        }
    }

    /// Sets what `name` in `dir` leads to.
    fn set_name(&mut self, dir: &Fid, name: &Name, child: Option<Fid>) {
        let entry = self.entries.entry(dir.object()).or_default();
        if entry.names.insert(name.clone(), child).is_none() {
            self.names += 1;
        }
    }

    /// Forgets `fid` (a promise on it broke, or this client changed it).
    pub fn invalidate(&mut self, fid: &Fid) {
        self.drop_entry(fid);
        self.note(Some(fid.object()));
    }

    /// This client's own `op`, logged or complete: everything it touched is forgotten,
    /// except that a directory it changes keeps its other names (the op changes only those
    /// it names; another client's change would break the promise and take them all).
    /// `applied`: the op is complete, every replica answering alike (with the fid a
    /// create resolved to), and the promises on `named` (directories whose state every
    /// replica just answered) held throughout: the names it changed in those are kept
    /// as the op left them.
    pub fn own_op(&mut self, op: &Op, applied: Option<Option<Fid>>, named: &[Fid]) {
        let names = names_changed(op, applied.flatten());
        for fid in touched(op) {
            if names.iter().any(|(dir, _, _)| *dir == fid) {
                self.forget_state(&fid);
            } else {
                self.invalidate(&fid);
            }
        }
        for (dir, name, after) in names {
            if applied.is_some() && named.contains(&dir) {
                self.set_name(&dir, name, after);
            } else if let Some(entry) = self.entries.get_mut(&dir.object())
                && entry.names.remove(name).is_some()
            {
                self.names -= 1;
            }
        }
        self.make_room();
    }

    /// Forgets `fid`'s state and data, keeping its names.
    fn forget_state(&mut self, fid: &Fid) {
        if let Some(e) = self.entries.get_mut(&fid.object()) {
            e.state = None;
            let blocks = std::mem::take(&mut e.blocks);
            self.release(blocks);
        }
        self.note(Some(fid.object()));
    }

    /// Forgets everything (promises were lost).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.lru.clear();
        self.names = 0;
        self.data_bytes = 0;
        self.note(None);
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn make_room(&mut self) {
        if self.entries.len() + self.names > self.limits.entries {
            // Rare (a very large working set): start over rather than track use per object.
            self.entries.clear();
            self.lru.clear();
            self.names = 0;
            self.data_bytes = 0;
        }
        while self.data_bytes > self.limits.data_bytes {
            let Some((_, (fid, block))) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.get_mut(&fid)
                && let Some((bytes, _)) = e.blocks.remove(&block)
            {
                self.data_bytes -= bytes.len();
            }
        }
    }

    /// Keeps `state` (fetched under promises since `since`).
    pub fn put_state(&mut self, since: u64, state: ObjectState) -> bool {
        if !self.unbroken(since, &state.fid) {
            return false;
        }
        let entry = self.entries.entry(state.fid.object()).or_default();
        if entry.state.as_ref().is_some_and(|s| s.tag != state.tag) {
            // A different state than the one its names and data belong to.
            let fid = state.fid;
            self.drop_entry(&fid);
            self.entries.entry(fid.object()).or_default().state = Some(state);
        } else {
            entry.state = Some(state);
        }
        self.make_room();
        true
    }

    /// The state of `fid`, if cached.
    pub fn state(&mut self, fid: &Fid) -> Option<ObjectState> {
        let found = self
            .entries
            .get(&fid.object())
            .and_then(|e| e.state.clone());
        self.count(found.is_some());
        found
    }

    fn count(&mut self, hit: bool) {
        if hit {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
    }

    /// Keeps what `name` in `dir` leads to (looked up since `since` under promises on
    /// `dir` from every member).
    pub fn put_name(&mut self, since: u64, dir: &Fid, name: &Name, child: Option<Fid>) {
        if !self.unbroken(since, dir) {
            return;
        }
        self.set_name(dir, name, child);
        self.make_room();
    }

    /// What `name` in `dir` leads to: `Some(None)` for a cached "no such name".
    pub fn name(&mut self, dir: &Fid, name: &Name) -> Option<Option<Fid>> {
        let found = self
            .entries
            .get(&dir.object())
            .and_then(|e| e.names.get(name))
            .copied();
        self.count(found.is_some());
        found
    }

    /// Keeps block `index` of `fid` (read since `since`), if `fid` is cached with the tag
    /// `tag` (the data belongs to that state).
    pub fn put_block(&mut self, since: u64, fid: &Fid, tag: &ContentTag, index: u64, data: Bytes) {
        if !self.unbroken(since, fid) {
            return;
        }
        let tick = self.next_tick();
        let Some(entry) = self
            .entries
            .get_mut(&fid.object())
            .filter(|e| e.state.as_ref().is_some_and(|s| &s.tag == tag))
        else {
            return;
        };
        let len = data.len();
        if let Some((old, old_tick)) = entry.blocks.insert(index, (data, tick)) {
            self.data_bytes -= old.len();
            self.lru.remove(&old_tick);
        }
        self.data_bytes += len;
        self.lru.insert(tick, (fid.object(), index));
        self.make_room();
    }

    /// Block `index` of `fid`, if cached under the state tagged `tag`.
    pub fn block(&mut self, fid: &Fid, tag: &ContentTag, index: u64) -> Option<Bytes> {
        let tick = self.next_tick();
        let found = self
            .entries
            .get_mut(&fid.object())
            .filter(|e| e.state.as_ref().is_some_and(|s| &s.tag == tag))
            .and_then(|e| e.blocks.get_mut(&index))
            .map(|(bytes, used)| (bytes.clone(), std::mem::replace(used, tick)));
        self.count(found.is_some());
        let (bytes, old) = found?;
        self.stats.data_hits += 1;
        self.lru.remove(&old);
        self.lru.insert(tick, (fid.object(), index));
        Some(bytes)
    }

    /// Whether blocks `first..=last` of `fid` are all cached (use is not counted).
    pub fn has_blocks(&self, fid: &Fid, first: u64, last: u64) -> bool {
        self.entries
            .get(&fid.object())
            .is_some_and(|e| (first..=last).all(|i| e.blocks.contains_key(&i)))
    }

    /// Data bytes held.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use codetta_wire::VolumeId;

    fn fid(n: u64) -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode: n,
            unique: 1,
        }
    }

    fn state(n: u64, tag: u8) -> ObjectState {
        let t = codetta_wire::Time::default();
        ObjectState {
            fid: fid(n),
            attrs: codetta_wire::Attrs {
                ftype: codetta_wire::FileType::Regular,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 0,
                nlink: 1,
                atime: t,
                mtime: t,
                ctime: t,
            },
            version: codetta_wire::version::VersionVector::new(),
            tag: ContentTag([tag; 32]),
        }
    }

    #[test]
    fn a_fill_that_raced_a_break_is_not_kept() {
        let mut c = Cache::new(CacheLimits::default());
        let before = c.snapshot();
        c.invalidate(&fid(1));
        assert!(
            !c.put_state(before, state(1, 1)),
            "broken since the fetch began"
        );
        assert!(
            c.put_state(before, state(2, 1)),
            "another object is unaffected"
        );
        let before = c.snapshot();
        c.clear();
        assert!(!c.put_state(before, state(2, 1)));
        // Past the remembered invalidations, nothing older is kept.
        let before = c.snapshot();
        for n in 0..RECENT as u64 + 1 {
            c.invalidate(&fid(100 + n));
        }
        assert!(!c.put_state(before, state(3, 1)));
    }

    #[test]
    fn own_changes_keep_a_directorys_other_names() {
        let mut c = Cache::new(CacheLimits::default());
        let s = c.snapshot();
        let (a, b) = (Name::new(b"a").unwrap(), Name::new(b"b").unwrap());
        c.put_state(s, state(1, 1));
        c.put_name(s, &fid(1), &a, Some(fid(2)));
        c.put_name(s, &fid(1), &b, None);
        let create = Op::Create {
            dir: fid(1),
            name: b.clone(),
            fid: fid(3),
            new: codetta_wire::update::NewObject {
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            how: codetta_wire::update::CreateHow::Guarded,
        };
        // Logged: the directory's state and the name it makes go; the other name stays.
        c.own_op(&create, None, &[]);
        assert_eq!(c.state(&fid(1)), None);
        assert_eq!(c.name(&fid(1), &b), None);
        assert_eq!(c.name(&fid(1), &a), Some(Some(fid(2))));
        c.put_name(s, &fid(1), &b, None);
        assert_eq!(
            c.name(&fid(1), &b),
            None,
            "a lookup that raced it is not kept"
        );
        // Complete, the directory's new state answered by every replica: the name is kept.
        c.own_op(&create, Some(Some(fid(3))), &[fid(1)]);
        assert_eq!(c.name(&fid(1), &b), Some(Some(fid(3))));
        // Complete without such an answer: the name is forgotten, not guessed.
        c.own_op(&create, Some(Some(fid(3))), &[]);
        assert_eq!(c.name(&fid(1), &b), None);
        let remove = Op::Remove {
            dir: fid(1),
            name: a.clone(),
            fid: fid(2),
        };
        c.own_op(&remove, Some(None), &[fid(1)]);
        assert_eq!(c.name(&fid(1), &a), Some(None), "gone, as a cached absence");
        assert_eq!(c.names, 1);
        // Another client's change takes every name.
        c.invalidate(&fid(1));
        assert_eq!(c.name(&fid(1), &a), None);
        assert_eq!(c.names, 0);
    }

    #[test]
    fn names_and_data_go_with_their_object() {
        let mut c = Cache::new(CacheLimits::default());
        let s = c.snapshot();
        let name = Name::new(b"a").unwrap();
        c.put_name(s, &fid(1), &name, Some(fid(2)));
        assert_eq!(c.name(&fid(1), &name), Some(Some(fid(2))));
        c.put_state(s, state(1, 1));
        assert_eq!(
            c.name(&fid(1), &name),
            Some(Some(fid(2))),
            "kept with its state"
        );
        c.put_state(s, state(1, 2));
        assert_eq!(
            c.name(&fid(1), &name),
            None,
            "a new state drops the old names"
        );
        c.put_name(s, &fid(1), &name, Some(fid(2)));
        c.put_state(s, state(3, 7));
        c.put_block(
            s,
            &fid(3),
            &ContentTag([8; 32]),
            0,
            Bytes::from_static(b"x"),
        );
        assert!(
            c.block(&fid(3), &ContentTag([7; 32]), 0).is_none(),
            "data of another state"
        );
        c.put_block(
            s,
            &fid(3),
            &ContentTag([7; 32]),
            0,
            Bytes::from_static(b"x"),
        );
        assert_eq!(
            c.block(&fid(3), &ContentTag([7; 32]), 0).unwrap(),
            Bytes::from_static(b"x")
        );
        c.invalidate(&fid(1));
        c.invalidate(&fid(3));
        assert_eq!(c.name(&fid(1), &name), None);
        assert!(c.block(&fid(3), &ContentTag([7; 32]), 0).is_none());
        assert_eq!(c.data_bytes(), 0);
        assert!(c.stats.hits >= 2 && c.stats.misses >= 2);
    }

    #[test]
    fn data_is_bounded_least_recently_used_first() {
        let mut c = Cache::new(CacheLimits {
            data_bytes: 3 * 10,
            entries: 100,
        });
        let s = c.snapshot();
        c.put_state(s, state(1, 1));
        for i in 0..3 {
            c.put_block(
                s,
                &fid(1),
                &ContentTag([1; 32]),
                i,
                Bytes::from(vec![0u8; 10]),
            );
        }
        c.block(&fid(1), &ContentTag([1; 32]), 0); // block 1 is now the least recently used
        c.put_block(
            s,
            &fid(1),
            &ContentTag([1; 32]),
            3,
            Bytes::from(vec![0u8; 10]),
        );
        assert!(c.block(&fid(1), &ContentTag([1; 32]), 1).is_none());
        assert!(c.block(&fid(1), &ContentTag([1; 32]), 0).is_some());
        assert_eq!(c.data_bytes(), 30);
    }
}
