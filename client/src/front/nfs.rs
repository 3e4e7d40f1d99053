//! NFSv3 procedures (RFC 1813): each call's decoded arguments carried out on a
//! [`Backend`] (Codetta's file system, or the bench's in-memory one) and its results
//! encoded. A failure is its status followed by the
//! procedure's failure arm with no attributes (always allowed, and never stale).

use super::backend::{Backend, DirPages};
use super::results::{
    self, POST_OP_ATTR_LEN, POST_OP_FH_LEN, fattr3, post_op_attr, post_op_fh, status, wcc_data,
};
use crate::nfs::attrs::fattr;
use crate::nfs::creds::Caller;
use crate::nfs::handle::{self, HANDLE_GENERATION};
use crate::nfs::{MAX_IO, MAX_NAME_LEN, Place, Stability};
use bytes::Bytes;
use codetta_oncrpc::XdrWriter;
use codetta_oncrpc::nfs3::{DirOp, Handle, NfsArgs, NodeKind};
use codetta_wire::{Attrs, Fid, FileType, Name};
use nfs3_types::nfs3::nfsstat3;

/// The WRITE and COMMIT verifier (RFC 1813): new at each daemon start, because UNSTABLE
/// writes are held in memory until COMMIT. A client that sees it change sends again every
/// write not yet committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteVerifier(pub [u8; 8]);

impl WriteVerifier {
    /// The same at every start (the handles' generation, as before held writes): only for
    /// tests that show the loss the per-start verifier prevents.
    pub const FIXED: WriteVerifier = WriteVerifier(HANDLE_GENERATION.to_be_bytes());

    /// One for this start: the start time in nanoseconds and the process id, so two starts
    /// (even within a clock tick, or after the clock stepped back) differ.
    pub fn per_start() -> WriteVerifier {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mixed = nanos ^ (u64::from(std::process::id()) << 40);
        let mut v = mixed.to_be_bytes();
        if WriteVerifier(v) == Self::FIXED {
            v[7] ^= 1;
        }
        WriteVerifier(v)
    }
}

/// FSINFO properties: hard and symbolic links, the same PATHCONF for every object,
/// settable times.
const FSF3_LINK: u32 = 0x0001;
const FSF3_SYMLINK: u32 = 0x0002;
const FSF3_HOMOGENEOUS: u32 = 0x0008;
const FSF3_CANSETTIME: u32 = 0x0010;

/// Bytes FSSTAT counts per object still to come (the free "inodes" are the free space in
/// these).
const FILE_COST: u64 = 4096;

/// Bytes of a READDIR reply before its entries (status, attributes, verifier) and after
/// them (end of list, eof).
const DIR_HEADER: usize = 4 + POST_OP_ATTR_LEN + 8;
const DIR_TRAILER: usize = 8;

/// Carries out one NFSv3 call; the results (status first) as buffers to write in order.
pub async fn serve<B: Backend>(
    fs: &B,
    caller: &Caller,
    call: NfsArgs,
    verifier: WriteVerifier,
) -> Vec<Bytes> {
    let failure_words = failure_words(&call);
    match run(fs, caller, call, verifier).await {
        Ok(parts) => parts,
        Err(s) => {
            let mut w = XdrWriter::new();
            status(&mut w, s);
            for _ in 0..failure_words {
                w.u32(0);
            }
            vec![w.into_inner().freeze()]
        }
    }
}

/// Words of a failure's arm with no attributes: a `post_op_attr` is one, a `wcc_data`
/// two.
fn failure_words(call: &NfsArgs) -> usize {
    match call {
        NfsArgs::Null | NfsArgs::GetAttr(_) => 0,
        NfsArgs::Lookup(_)
        | NfsArgs::Access { .. }
        | NfsArgs::ReadLink(_)
        | NfsArgs::Read { .. }
        | NfsArgs::ReadDir { .. }
        | NfsArgs::ReadDirPlus { .. }
        | NfsArgs::FsStat(_)
        | NfsArgs::FsInfo(_)
        | NfsArgs::PathConf(_) => 1,
        NfsArgs::SetAttr { .. }
        | NfsArgs::Write { .. }
        | NfsArgs::Create { .. }
        | NfsArgs::Mkdir { .. }
        | NfsArgs::Symlink { .. }
        | NfsArgs::Mknod { .. }
        | NfsArgs::Remove(_)
        | NfsArgs::Rmdir(_)
        | NfsArgs::Commit { .. } => 2,
        NfsArgs::Link { .. } => 3,
        NfsArgs::Rename { .. } => 4,
    }
}

fn fid(h: &Handle) -> Result<Fid, nfsstat3> {
    handle::decode(&h.0)
}

fn place(d: &DirOp) -> Result<Place<'_>, nfsstat3> {
    Ok(Place {
        dir: fid(&d.dir)?,
        name: &d.name,
    })
}

/// A reply that starts with NFS3_OK.
fn ok() -> XdrWriter {
    let mut w = XdrWriter::new();
    status(&mut w, nfsstat3::NFS3_OK);
    w
}

fn done(w: XdrWriter) -> Result<Vec<Bytes>, nfsstat3> {
    Ok(vec![w.into_inner().freeze()])
}

/// The reply of CREATE, MKDIR and SYMLINK.
fn made(new: Fid, attrs: &codetta_wire::Attrs) -> Result<Vec<Bytes>, nfsstat3> {
    let mut w = ok();
    post_op_fh(&mut w, &new);
    post_op_attr(&mut w, Some((&new, attrs)));
    wcc_data(&mut w, None);
    done(w)
}

async fn run<B: Backend>(
    fs: &B,
    caller: &Caller,
    call: NfsArgs,
    verifier: WriteVerifier,
) -> Result<Vec<Bytes>, nfsstat3> {
    match call {
        NfsArgs::Null => Ok(Vec::new()),
        NfsArgs::GetAttr(h) => {
            let f = fid(&h)?;
            let attrs = fs.getattr(&f).await?;
            let mut w = ok();
            fattr3(&mut w, &fattr(&f, &attrs));
            done(w)
        }
        NfsArgs::SetAttr {
            object,
            attrs,
            guard,
        } => {
            let f = fid(&object)?;
            let after = fs.setattr(caller, &f, &attrs, guard).await?;
            let mut w = ok();
            wcc_data(&mut w, Some((&f, &after)));
            done(w)
        }
        // Both of its arms carry the directory's attributes.
        NfsArgs::Lookup(d) => Ok(lookup(fs, caller, &d).await),
        NfsArgs::Access { object, access } => {
            let f = fid(&object)?;
            let (granted, attrs) = fs.access(caller, &f, access).await?;
            let mut w = ok();
            post_op_attr(&mut w, Some((&f, &attrs)));
            w.u32(granted);
            done(w)
        }
        NfsArgs::ReadLink(h) => {
            let f = fid(&h)?;
            let (target, attrs) = fs.readlink(&f).await?;
            let mut w = ok();
            post_op_attr(&mut w, Some((&f, &attrs)));
            w.opaque(&target);
            done(w)
        }
        NfsArgs::Read {
            file,
            offset,
            count,
        } => {
            let f = fid(&file)?;
            let (pieces, eof, attrs) = fs.read(caller, &f, offset, count).await?;
            let total: usize = pieces.iter().map(Bytes::len).sum();
            let len = u32::try_from(total).map_err(|_| nfsstat3::NFS3ERR_IO)?;
            let mut w = ok();
            post_op_attr(&mut w, Some((&f, &attrs)));
            w.u32(len).bool(eof).u32(len);
            let pad = (4 - total % 4) % 4;
            // The data's own buffers follow the header (one vectored write, no copy).
            let mut parts = Vec::with_capacity(pieces.len() + 2);
            parts.push(w.into_inner().freeze());
            parts.extend(pieces);
            if pad > 0 {
                parts.push(Bytes::from_static(&[0; 3]).slice(..pad));
            }
            Ok(parts)
        }
        NfsArgs::Write {
            file,
            offset,
            count,
            stable,
            mut data,
        } => {
            let f = fid(&file)?;
            data.truncate(count as usize);
            let len = u32::try_from(data.len()).map_err(|_| nfsstat3::NFS3ERR_INVAL)?;
            let how = if stable == 0 {
                Stability::Unstable
            } else {
                Stability::Stable
            };
            let (attrs, kept) = fs.write(caller, &f, offset, data, how).await?;
            let mut w = ok();
            wcc_data(&mut w, Some((&f, &attrs)));
            // stable_how: UNSTABLE 0, FILE_SYNC 2.
            w.u32(len)
                .u32(if kept == Stability::Unstable { 0 } else { 2 });
            w.fixed(&verifier.0);
            done(w)
        }
        NfsArgs::Create { place: d, how } => {
            let (new, attrs) = fs.create(caller, &place(&d)?, &how).await?;
            made(new, &attrs)
        }
        NfsArgs::Mkdir { place: d, attrs } => {
            let (new, attrs) = fs.mkdir(caller, &place(&d)?, &attrs).await?;
            made(new, &attrs)
        }
        NfsArgs::Symlink {
            place: d,
            attrs,
            target,
        } => {
            let (new, attrs) = fs.symlink(caller, &place(&d)?, &attrs, &target).await?;
            made(new, &attrs)
        }
        NfsArgs::Mknod { place: d, kind } => {
            let (kind, attrs) = match kind {
                NodeKind::Fifo(a) => (FileType::Fifo, a),
                NodeKind::Socket(a) => (FileType::Socket, a),
                NodeKind::Char {
                    attrs,
                    major,
                    minor,
                } => (FileType::CharDevice { major, minor }, attrs),
                NodeKind::Block {
                    attrs,
                    major,
                    minor,
                } => (FileType::BlockDevice { major, minor }, attrs),
                NodeKind::Other(_) => return Err(nfsstat3::NFS3ERR_BADTYPE),
            };
            let (new, attrs) = fs.mknod(caller, &place(&d)?, kind, &attrs).await?;
            made(new, &attrs)
        }
        NfsArgs::Remove(d) | NfsArgs::Rmdir(d) if d.name.is_empty() => Err(nfsstat3::NFS3ERR_INVAL),
        NfsArgs::Remove(d) => {
            fs.remove(caller, &place(&d)?, false).await?;
            let mut w = ok();
            wcc_data(&mut w, None);
            done(w)
        }
        NfsArgs::Rmdir(d) => {
            fs.remove(caller, &place(&d)?, true).await?;
            let mut w = ok();
            wcc_data(&mut w, None);
            done(w)
        }
        NfsArgs::Rename { from, to } => {
            fs.rename(caller, &place(&from)?, &place(&to)?).await?;
            let mut w = ok();
            wcc_data(&mut w, None);
            wcc_data(&mut w, None);
            done(w)
        }
        NfsArgs::Link { file, to: link } => {
            let f = fid(&file)?;
            if link.name.is_empty() {
                return Err(nfsstat3::NFS3ERR_INVAL);
            }
            let attrs = fs.link(caller, &f, &place(&link)?).await?;
            let mut w = ok();
            post_op_attr(&mut w, Some((&f, &attrs)));
            wcc_data(&mut w, None);
            done(w)
        }
        NfsArgs::ReadDir {
            dir,
            cookie,
            verifier,
            count,
        } => read_dir(fs, caller, &fid(&dir)?, (cookie, verifier), count, false).await,
        NfsArgs::ReadDirPlus {
            dir,
            cookie,
            verifier,
            maxcount,
            ..
        } => read_dir(fs, caller, &fid(&dir)?, (cookie, verifier), maxcount, true).await,
        NfsArgs::FsStat(h) => {
            let f = fid(&h)?;
            let (space, attrs) = fs.fsstat(&f).await?;
            let mut w = ok();
            post_op_attr(&mut w, Some((&f, &attrs)));
            // Bytes: total, free, free to this caller (no reservation for root).
            w.u64(space.total_bytes)
                .u64(space.free_bytes)
                .u64(space.free_bytes);
            // Objects: there is no inode table to run out of; an object takes at least a
            // block of metadata, so the free space in blocks is how many more fit.
            let free_files = space.free_bytes / FILE_COST;
            w.u64(space.files.saturating_add(free_files));
            w.u64(free_files).u64(free_files);
            // The figures change with every write: no time they hold.
            w.u32(0);
            done(w)
        }
        NfsArgs::FsInfo(h) => {
            let f = fid(&h)?;
            let attrs = fs.getattr(&f).await?;
            let mut w = ok();
            post_op_attr(&mut w, Some((&f, &attrs)));
            // rtmax, rtpref, rtmult, wtmax, wtpref, wtmult, dtpref.
            w.u32(MAX_IO).u32(MAX_IO).u32(4096);
            w.u32(MAX_IO).u32(MAX_IO).u32(4096);
            w.u32(64 * 1024);
            w.u64(u64::MAX >> 1);
            w.u32(0).u32(1);
            w.u32(FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME);
            done(w)
        }
        NfsArgs::PathConf(h) => {
            let f = fid(&h)?;
            let attrs = fs.getattr(&f).await?;
            let mut w = ok();
            post_op_attr(&mut w, Some((&f, &attrs)));
            // linkmax, name_max, no_trunc, chown_restricted, case_insensitive,
            // case_preserving.
            w.u32(codetta_wire::MAX_LINKS).u32(MAX_NAME_LEN);
            w.bool(true).bool(true).bool(false).bool(true);
            done(w)
        }
        NfsArgs::Commit { file, .. } => {
            let f = fid(&file)?;
            let attrs = fs.commit(&f).await?;
            let mut w = ok();
            wcc_data(&mut w, Some((&f, &attrs)));
            w.fixed(&verifier.0);
            done(w)
        }
    }
}

/// LOOKUP, with the directory's attributes in both arms: a client learns from them that
/// the directory changed (a switch of root volumes, say) and drops the names it cached.
async fn lookup<B: Backend>(fs: &B, caller: &Caller, d: &DirOp) -> Vec<Bytes> {
    let mut w = XdrWriter::new();
    let at = match place(d) {
        Ok(at) => at,
        Err(s) => {
            status(&mut w, s);
            post_op_attr(&mut w, None);
            return vec![w.into_inner().freeze()];
        }
    };
    let found = fs.lookup(caller, &at.dir, at.name).await;
    let dir_attrs = fs.getattr(&at.dir).await.ok();
    let dir = dir_attrs.as_ref().map(|a| (&at.dir, a));
    match found {
        Ok(found) => {
            let attrs = fs.getattr(&found).await.ok();
            status(&mut w, nfsstat3::NFS3_OK);
            results::handle(&mut w, &found);
            post_op_attr(&mut w, attrs.as_ref().map(|a| (&found, a)));
            post_op_attr(&mut w, dir);
        }
        Err(s) => {
            status(&mut w, s);
            post_op_attr(&mut w, dir);
        }
    }
    vec![w.into_inner().freeze()]
}

/// The cookie verifier of every listing: cookies are names' hashes (the same on every
/// replica and across restarts), so one verifier holds for all. A client still holding
/// cookies from before cookies were kept below 2^63 (another verifier) is told BAD_COOKIE
/// and starts its listing again. A zero verifier (a client that does not keep them) is
/// taken.
const COOKIE_VERIFIER: [u8; 8] = *b"cookie63";

/// The cookies of `.` and `..` in a listing.
const DOT_COOKIE: u64 = 1;
const DOTDOT_COOKIE: u64 = 2;

/// READDIR (`plus` false) and READDIRPLUS: `.` and `..` first, then entries after
/// `cookie` while the reply stays within `count` bytes (and [`MAX_IO`]); TOOSMALL when not
/// even one fits.
async fn read_dir<B: Backend>(
    fs: &B,
    caller: &Caller,
    dir: &Fid,
    (cookie, verifier): (u64, [u8; 8]),
    count: u32,
    plus: bool,
) -> Result<Vec<Bytes>, nfsstat3> {
    // No name has a cookie at or past 2^63; a cookie of another verifier is of another
    // scheme.
    let foreign = verifier != COOKIE_VERIFIER && verifier != [0; 8];
    if cookie >= 1 << 63 || (cookie >= Name::FIRST_COOKIE && foreign) {
        return Err(nfsstat3::NFS3ERR_BAD_COOKIE);
    }
    let budget = count.min(MAX_IO) as usize;
    let (mut pager, dir_attrs) = fs.open_dir(caller, dir, cookie).await?;
    // Handles and attributes of the entries only to a caller who may look them up (read
    // permission lists names; search permission reaches the objects).
    let reachable = crate::nfs::perm::may_lookup(caller, &dir_attrs).is_ok();
    // `..` needs the parent: remembered from LOOKUP, or a server call made while the first
    // page is fetched.
    let parent = async {
        if cookie >= DOTDOT_COOKIE {
            return Ok(None);
        }
        let parent = fs.listed_parent(dir).await?;
        let attrs = if plus {
            fs.getattr(&parent).await.ok()
        } else {
            None
        };
        Ok::<_, nfsstat3>(Some((parent, attrs)))
    };
    let (parent, first) = tokio::join!(parent, pager.next());
    let mut pending = std::collections::VecDeque::new();
    if cookie < DOT_COOKIE {
        pending.push_back(Entry {
            name: b".".to_vec(),
            cookie: DOT_COOKIE,
            fid: *dir,
            attrs: Some(dir_attrs.clone()),
        });
    }
    if let Some((fid, attrs)) = parent? {
        pending.push_back(Entry {
            name: b"..".to_vec(),
            cookie: DOTDOT_COOKIE,
            fid,
            attrs,
        });
    }
    pending.extend(first?.map(Entry::from));
    let mut entries = XdrWriter::new();
    let mut listed = 0usize;
    let eof = loop {
        let e = match pending.pop_front() {
            Some(e) => e,
            None => match pager.next().await? {
                Some(e) => Entry::from(e),
                None => break true,
            },
        };
        let mut size = 4 + 8 + 4 + e.name.len().div_ceil(4) * 4 + 8;
        if plus {
            size += POST_OP_ATTR_LEN + POST_OP_FH_LEN;
        }
        if DIR_HEADER + entries.len() + size + DIR_TRAILER > budget {
            if listed == 0 {
                return Err(nfsstat3::NFS3ERR_TOOSMALL);
            }
            break false;
        }
        entries.bool(true).u64(crate::nfs::attrs::fileid(&e.fid));
        entries.opaque(&e.name).u64(e.cookie);
        if plus && reachable {
            post_op_attr(&mut entries, e.attrs.as_ref().map(|a| (&e.fid, a)));
            post_op_fh(&mut entries, &e.fid);
        } else if plus {
            entries.bool(false).bool(false);
        }
        listed += 1;
    };
    let mut w = ok();
    post_op_attr(&mut w, Some((dir, &dir_attrs)));
    w.fixed(&COOKIE_VERIFIER);
    let mut tail = XdrWriter::new();
    tail.bool(false).bool(eof);
    Ok(vec![
        w.into_inner().freeze(),
        entries.into_inner().freeze(),
        tail.into_inner().freeze(),
    ])
}

/// One entry of a listing as written.
struct Entry {
    name: Vec<u8>,
    cookie: u64,
    fid: Fid,
    attrs: Option<Attrs>,
}

impl From<crate::nfs::dir::Entry> for Entry {
    fn from(e: crate::nfs::dir::Entry) -> Entry {
        Entry {
            name: e.name.as_bytes().to_vec(),
            cookie: e.cookie,
            fid: e.fid,
            attrs: e.attrs,
        }
    }
}
