//! UNSTABLE writes held in memory, as RFC 1813 intends: the daemon answers them with a
//! write verifier that changes at each start, so a daemon that dies before a COMMIT makes
//! the kernel send them again, and nothing needs to be in the modify log before the
//! answer. No I/O here: the per-volume client takes writes out to log them (at COMMIT,
//! before a read or any other update of the file, once a file holds a run worth shipping,
//! or when the held bytes pass the limit, oldest file first).
//!
//! What must hold: the writes of one file come out in the order they went in, and a file's
//! attributes as a caller sees them include its held writes and those taken out but not
//! yet in the log ([`Unstable::overlay`]), so no answer ever shows a file shrink back.

use bytes::Bytes;
use codetta_wire::{Attrs, Fid, Time};
use std::collections::{BTreeMap, HashMap};

/// One held write: its bytes, where they go, when it was made (its record's time, so the
/// mtime a caller saw is the one the servers store), and what it holds while held (the
/// log capacity it will use: the bound and the back-pressure).
pub struct HeldWrite<P> {
    pub offset: u64,
    pub data: Bytes,
    /// What it counts against the held limit: the log capacity its permit holds (at least
    /// its length), so held writes never hold more than the limit of that capacity.
    pub cost: usize,
    pub time: Time,
    /// The blake3 digests of its pieces (`wire::update::piece_hashes`), made when it came.
    pub hashes: Vec<[u8; 32]>,
    pub permit: P,
}

/// The held writes of one file.
struct FileWrites<P> {
    /// When its oldest held write came (for the oldest-first flush).
    since: u64,
    writes: Vec<HeldWrite<P>>,
    /// Their data bytes (kept, not summed: every write asks).
    bytes: usize,
    /// The end of the furthest write, and the time of the last.
    end: u64,
    last: Time,
}

/// Held writes of every file of one volume, at most `limit` bytes before the oldest file's
/// must go.
pub struct Unstable<P> {
    limit: usize,
    bytes: usize,
    files: HashMap<Fid, FileWrites<P>>,
    /// Writes taken out and not yet logged, per file: how many, their furthest end and
    /// the last one's time.
    in_flight: HashMap<Fid, (usize, u64, Time)>,
    /// `since` -> file, oldest first.
    order: BTreeMap<u64, Fid>,
    tick: u64,
}

impl<P> Unstable<P> {
    /// Holds at most `limit` bytes (above it, [`Self::take_oldest`] has work).
    pub fn new(limit: usize) -> Self {
        Unstable {
            limit,
            bytes: 0,
            files: HashMap::new(),
            in_flight: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Holds `write` for `fid`, after its earlier ones.
    pub fn add(&mut self, fid: Fid, write: HeldWrite<P>) {
        self.bytes += write.cost;
        let end = write.offset.saturating_add(write.data.len() as u64);
        let file = self.files.entry(fid).or_insert_with(|| {
            self.tick += 1;
            self.order.insert(self.tick, fid);
            FileWrites {
                since: self.tick,
                writes: Vec::new(),
                bytes: 0,
                end: 0,
                last: write.time,
            }
        });
        file.end = file.end.max(end);
        file.last = file.last.max(write.time);
        file.bytes += write.data.len();
        file.writes.push(write);
    }

    /// Every held write of `fid`, in the order they came; none are held after. Each counts
    /// in the file's attributes until [`Self::logged`] says it is in the log.
    pub fn take(&mut self, fid: &Fid) -> Vec<HeldWrite<P>> {
        let Some(file) = self.files.remove(fid) else {
            return Vec::new();
        };
        self.order.remove(&file.since);
        self.bytes -= file.writes.iter().map(|w| w.cost).sum::<usize>();
        let flight = self.in_flight.entry(*fid).or_insert((0, 0, file.last));
        flight.0 += file.writes.len();
        flight.1 = flight.1.max(file.end);
        flight.2 = flight.2.max(file.last);
        file.writes
    }

    /// One taken write of `fid` is in the log now (or failed to get there).
    pub fn logged(&mut self, fid: &Fid) {
        if let Some(flight) = self.in_flight.get_mut(fid) {
            flight.0 = flight.0.saturating_sub(1);
            if flight.0 == 0 {
                self.in_flight.remove(fid);
            }
        }
    }

    /// Whether some of `fid`'s taken writes are not in the log yet.
    pub fn in_flight(&self, fid: &Fid) -> bool {
        self.in_flight.contains_key(fid)
    }

    /// Bytes `fid` holds.
    pub fn file_bytes(&self, fid: &Fid) -> usize {
        self.files.get(fid).map_or(0, |f| f.bytes)
    }

    /// What `fid`'s held and in-flight writes add to its attributes: the furthest end and
    /// the last write's time. Taken before the attributes they go on are read, so a write
    /// logged in between is in those attributes instead.
    pub fn pending(&self, fid: &Fid) -> Option<(u64, Time)> {
        let held = self.files.get(fid).map(|f| (f.end, f.last));
        let flying = self.in_flight.get(fid).map(|f| (f.1, f.2));
        match (held, flying) {
            (Some(a), Some(b)) => Some((a.0.max(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        }
    }

    /// While more than the limit would be held with `coming` more: the file whose writes
    /// have waited longest, and its writes.
    pub fn take_oldest(&mut self, coming: usize) -> Option<(Fid, Vec<HeldWrite<P>>)> {
        if self.bytes.saturating_add(coming) <= self.limit {
            return None;
        }
        let (_, fid) = self.order.first_key_value()?;
        let fid = *fid;
        Some((fid, self.take(&fid)))
    }

    /// Every file's held writes, the file that waited longest first; none are held after.
    pub fn take_all(&mut self) -> Vec<(Fid, Vec<HeldWrite<P>>)> {
        let order: Vec<Fid> = self.order.values().copied().collect();
        order
            .into_iter()
            .map(|fid| {
                let writes = self.take(&fid);
                (fid, writes)
            })
            .collect()
    }

    /// Whether `fid` has held writes.
    pub fn holds(&self, fid: &Fid) -> bool {
        self.files.contains_key(fid)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `fid`'s attributes with its held and in-flight writes applied as the servers will
    /// apply them: the size grows to the furthest end, mtime and ctime are the last
    /// write's (times are handed out in order, so the last is the greatest).
    pub fn overlay(&self, fid: &Fid, attrs: &mut Attrs) {
        apply_pending(self.pending(fid), attrs);
    }
}

/// Applies what [`Unstable::pending`] returned to `attrs`: never a smaller size or an
/// older time.
pub fn apply_pending(pending: Option<(u64, Time)>, attrs: &mut Attrs) {
    if let Some((end, last)) = pending {
        attrs.size = attrs.size.max(end);
        if last > attrs.mtime {
            attrs.mtime = last;
        }
        if last > attrs.ctime {
            attrs.ctime = last;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use codetta_wire::{FileType, VolumeId};

    fn fid(vnode: u64) -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode,
            unique: 1,
        }
    }

    fn w(offset: u64, len: usize, secs: i64) -> HeldWrite<()> {
        HeldWrite {
            offset,
            data: Bytes::from(vec![7u8; len]),
            time: Time { secs, nanos: 0 },
            hashes: Vec::new(),
            cost: len,
            permit: (),
        }
    }

    fn attrs() -> Attrs {
        Attrs {
            ftype: FileType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 100,
            nlink: 1,
            atime: Time::default(),
            mtime: Time::default(),
            ctime: Time::default(),
        }
    }

    /// A file's writes come out in order, once; the byte count follows.
    #[test]
    fn writes_come_out_in_order_once() {
        let mut u = Unstable::new(1 << 20);
        u.add(fid(1), w(0, 10, 1));
        u.add(fid(2), w(0, 5, 2));
        u.add(fid(1), w(5, 10, 3));
        assert_eq!(u.bytes(), 25);
        let taken: Vec<u64> = u.take(&fid(1)).iter().map(|w| w.offset).collect();
        assert_eq!(taken, vec![0, 5]);
        assert!(u.take(&fid(1)).is_empty());
        assert!(!u.holds(&fid(1)) && u.holds(&fid(2)));
        assert_eq!(u.bytes(), 5);
    }

    /// Past the limit, the file that waited longest goes first, until the rest fits.
    #[test]
    fn the_oldest_file_goes_first_past_the_limit() {
        let mut u = Unstable::new(20);
        u.add(fid(1), w(0, 10, 1));
        u.add(fid(2), w(0, 10, 2));
        assert!(u.take_oldest(0).is_none(), "at the limit is fine");
        // Room is made before a write that would pass the limit is taken in.
        let (first, _) = u.take_oldest(1).unwrap();
        assert_eq!(first, fid(1));
        assert!(u.take_oldest(1).is_none());
        u.add(fid(3), w(0, 10, 3));
        u.add(fid(2), w(10, 10, 4));
        let (next, writes) = u.take_oldest(0).unwrap();
        assert_eq!((next, writes.len()), (fid(2), 2));
        assert!(u.take_oldest(0).is_none());
        assert_eq!(u.bytes(), 10);
        // A file taken and written again counts as new.
        u.add(fid(2), w(0, 1, 5));
        u.add(fid(4), w(0, 1, 6));
        let all: Vec<Fid> = u.take_all().into_iter().map(|(f, _)| f).collect();
        assert_eq!(all, vec![fid(3), fid(2), fid(4)]);
        assert_eq!(u.bytes(), 0);
    }

    /// Attributes see held writes: the size grows (never shrinks), times are the last
    /// write's; other files are untouched.
    #[test]
    fn attributes_include_held_writes() {
        let mut u = Unstable::new(1 << 20);
        u.add(fid(1), w(200, 50, 7));
        u.add(fid(1), w(0, 10, 8));
        let mut a = attrs();
        u.overlay(&fid(1), &mut a);
        assert_eq!((a.size, a.mtime.secs, a.ctime.secs), (250, 8, 8));
        let mut b = attrs();
        u.add(fid(2), w(0, 10, 9));
        u.overlay(&fid(2), &mut b);
        assert_eq!(b.size, 100, "a write inside the file keeps its size");
        let mut c = attrs();
        u.overlay(&fid(3), &mut c);
        assert_eq!(c.mtime.secs, 0);
    }

    /// Taken writes still count until each is logged: the size never shows them gone in
    /// between.
    #[test]
    fn taken_writes_count_until_logged() {
        let mut u = Unstable::new(1 << 20);
        u.add(fid(1), w(0, 500, 1));
        u.add(fid(1), w(500, 500, 2));
        assert_eq!(u.file_bytes(&fid(1)), 1000);
        assert_eq!(u.take(&fid(1)).len(), 2);
        assert_eq!(u.file_bytes(&fid(1)), 0);
        u.add(fid(1), w(1000, 10, 3));
        let seen = |u: &Unstable<()>| {
            let mut a = attrs();
            u.overlay(&fid(1), &mut a);
            (a.size, a.mtime.secs)
        };
        assert_eq!(seen(&u), (1010, 3));
        u.logged(&fid(1));
        assert_eq!(seen(&u), (1010, 3));
        u.take(&fid(1));
        u.logged(&fid(1));
        assert_eq!(seen(&u), (1010, 3), "one still in flight");
        u.logged(&fid(1));
        assert_eq!(
            seen(&u),
            (100, 0),
            "all logged: the log's own overlay takes over"
        );
    }
}
