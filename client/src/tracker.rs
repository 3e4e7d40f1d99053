//! What the client knows about its own unshipped updates: per object, the last record that
//! touches it and the attributes it will have once that record is applied (rule 4: a client
//! sees its own records on top of server state); who waits for which record; and errors of
//! unstable writes kept for the next COMMIT.

use codetta_wire::update::Op;
use codetta_wire::{Attrs, Fid, FsError, RecordOutcome, Time};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Per-object bookkeeping while records that touch it are unshipped.
#[derive(Debug, Clone, Default)]
pub struct FidState {
    /// The highest sequence number of a logged record that touches this object.
    pub last_seq: u64,
    /// The highest sequence number of a record answered before the server applied it (an
    /// UNSTABLE WRITE); 0 if none. Reads of data and COMMIT wait for it; records whose
    /// callers wait for the server are invisible until answered, so nothing waits for them.
    pub early_seq: u64,
    /// Attributes with every logged record applied, when known.
    pub overlay: Option<Attrs>,
}

/// Bookkeeping shared by the appender, the shipper and the NFS calls.
#[derive(Default)]
pub struct Tracker {
    pub fids: HashMap<Fid, FidState>,
    pub waiters: HashMap<u64, oneshot::Sender<RecordOutcome>>,
    /// First error of an unwaited write or setattr, reported by the next COMMIT.
    pub sticky: HashMap<Fid, FsError>,
}

/// The objects an op changes.
pub fn affected(op: &Op) -> Vec<Fid> {
    match op {
        Op::Create { dir, fid, .. }
        | Op::Mkdir { dir, fid, .. }
        | Op::Symlink { dir, fid, .. }
        | Op::Mknod { dir, fid, .. }
        | Op::Link { dir, fid, .. }
        | Op::Remove { dir, fid, .. } => vec![*dir, *fid],
        Op::Rmdir { dir, .. } => vec![*dir],
        Op::Rename {
            from_dir, to_dir, ..
        } => vec![*from_dir, *to_dir],
        Op::SetAttr { fid, .. } | Op::Write { fid, .. } => vec![*fid],
    }
}

/// Applies an op's effect on the attributes of object `of` exactly as a server will (the
/// client assigns the times, so the prediction is exact).
pub fn apply_to_attrs(attrs: &mut Attrs, of: Fid, op: &Op, time: Time) {
    match op {
        Op::Link { fid, .. } if *fid == of => {
            attrs.nlink = attrs.nlink.saturating_add(1);
            attrs.ctime = time;
        }
        Op::Remove { fid, .. } if *fid == of => {
            attrs.nlink = attrs.nlink.saturating_sub(1);
            attrs.ctime = time;
        }
        Op::Write { offset, len, .. } => {
            attrs.size = attrs.size.max(offset.saturating_add(u64::from(*len)));
            attrs.mtime = time;
            attrs.ctime = time;
        }
        Op::SetAttr { set, .. } => {
            if let Some(mode) = set.mode {
                attrs.mode = mode & 0o7777;
            }
            if let Some(uid) = set.uid {
                attrs.uid = uid;
            }
            if let Some(gid) = set.gid {
                attrs.gid = gid;
            }
            if let Some(size) = set.size {
                attrs.size = size;
                attrs.mtime = time;
            }
            if let Some(atime) = set.atime {
                attrs.atime = atime;
            }
            if let Some(mtime) = set.mtime {
                attrs.mtime = mtime;
            }
            attrs.ctime = time;
        }
        _ => {}
    }
}

impl Tracker {
    /// Notes a logged record; `early` if its caller was answered before the server applies it.
    pub fn logged(&mut self, seq: u64, op: &Op, time: Time, early: bool) {
        for fid in affected(op) {
            let state = self.fids.entry(fid).or_default();
            state.last_seq = seq;
            if early {
                state.early_seq = seq;
            }
            if let Some(attrs) = state.overlay.as_mut() {
                apply_to_attrs(attrs, fid, op, time);
            }
        }
    }

    /// Notes that every record up to `acked` is applied, and delivers one outcome.
    pub fn applied(&mut self, seq: u64, op: &Op, outcome: RecordOutcome, acked: u64) {
        if let Ok(Some(fid)) = &outcome {
            // A create that resolved to an existing file may have changed it (truncate).
            if let Some(state) = self.fids.get_mut(fid) {
                state.overlay = None;
            }
        }
        // A waiter that gave up (its caller got JUKEBOX) no longer receives the outcome:
        // a failed write or setattr is then kept for the next COMMIT, like an unwaited one.
        let undelivered = match self.waiters.remove(&seq) {
            Some(waiter) => waiter.send(outcome).err(),
            None => Some(outcome),
        };
        if let (Some(Err(e)), Op::Write { fid, .. } | Op::SetAttr { fid, .. }) = (undelivered, op) {
            tracing::warn!(%fid, "an update answered before it was applied failed: {e}");
            self.sticky.entry(*fid).or_insert(e);
        }
        for fid in affected(op) {
            if self.fids.get(&fid).is_some_and(|s| s.last_seq <= acked) {
                self.fids.remove(&fid);
            }
        }
    }

    /// The sequence number a read of `fid`'s data (or a COMMIT) must wait for, if any.
    pub fn barrier(&self, fid: &Fid) -> Option<u64> {
        self.fids
            .get(fid)
            .map(|s| s.early_seq)
            .filter(|seq| *seq > 0)
    }

    /// Predicted attributes of `fid`, if it has unshipped records and a known base.
    pub fn overlay(&self, fid: &Fid) -> Option<Attrs> {
        self.fids.get(fid).and_then(|s| s.overlay.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codetta_wire::{FileType, SetAttrs, VolumeId};

    fn fid() -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode: 9,
            unique: 1,
        }
    }

    fn attrs() -> Attrs {
        Attrs {
            ftype: FileType::Regular,
            mode: 0o644,
            uid: 1,
            gid: 1,
            size: 10,
            nlink: 1,
            atime: Time::default(),
            mtime: Time::default(),
            ctime: Time::default(),
        }
    }

    #[test]
    fn overlay_follows_writes_until_acked() {
        let mut t = Tracker::default();
        t.fids.insert(
            fid(),
            FidState {
                overlay: Some(attrs()),
                ..FidState::default()
            },
        );
        let write = Op::Write {
            fid: fid(),
            offset: 100,
            len: 5,
            hashes: vec![[0; 32]],
        };
        let time = Time { secs: 7, nanos: 0 };
        t.logged(1, &write, time, true);
        let truncate = Op::SetAttr {
            fid: fid(),
            set: SetAttrs {
                size: Some(50),
                ..SetAttrs::default()
            },
        };
        t.logged(2, &truncate, Time { secs: 8, nanos: 0 }, true);
        let o = t.overlay(&fid()).unwrap_or_else(attrs);
        assert_eq!((o.size, o.mtime.secs, o.ctime.secs), (50, 8, 8));
        t.applied(1, &write, Ok(None), 1);
        assert_eq!(t.barrier(&fid()), Some(2));
        t.applied(2, &truncate, Err(FsError::NoSpace), 2);
        assert_eq!(t.barrier(&fid()), None);
        assert_eq!(t.sticky.remove(&fid()), Some(FsError::NoSpace));
        // A waiter that gave up does not swallow the failure either.
        let (tx, rx) = oneshot::channel();
        drop(rx);
        t.waiters.insert(3, tx);
        t.logged(3, &truncate, Time { secs: 9, nanos: 0 }, false);
        t.applied(3, &truncate, Err(FsError::Stale), 3);
        assert_eq!(t.sticky.get(&fid()), Some(&FsError::Stale));
    }
}
