//! Every permission decision of the file system, in one place: from the caller's
//! credential (uid, gid, supplementary groups) and the attributes of the object and of its
//! directory, with POSIX's rules as Linux applies them. Every path that reads or changes an
//! object asks here (the NFS calls in `nfs`; the cache and the modify log sit behind those
//! calls), so no path decides on its own.
//!
//! - Search (x) on a directory to look a name up in it; read (r) to list it.
//! - Write and search on a directory to create, remove or rename in it; in a sticky (+t)
//!   directory only the owner of the entry or of the directory (or root) removes it.
//! - Like the Linux NFS server, the owner of a regular file may read and write it whatever
//!   its mode through calls on it ("owner override": a process that created a file
//!   read-only still writes through the descriptor it opened). ACCESS has no override: it
//!   answers what an open() may do.
//! - SETATTR: mode by the owner or root (the setgid bit dropped when a non-root owner is
//!   not in the file's group); owner by root only; group by root, or by the owner to one
//!   of its groups; size with write permission; times to a given value by the owner or
//!   root, to "now" also with write permission.
//! - Privileges (setuid, and setgid with group execute) are dropped on a write or
//!   truncation by anyone but root, and on every change of owner or group of a
//!   non-directory (as Linux does; POSIX allows it).
//! - Root (uid 0) may do anything but execute a file with no execute bit; there is no
//!   squashing on the local endpoint. AUTH_NONE callers are nobody.

use super::creds::Caller;
use codetta_wire::update::NewObject;
use codetta_wire::{Attrs, FileType, SetAttrs};
use nfs3_types::nfs3::nfsstat3;

pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 1;

const SETUID: u32 = 0o4000;
const SETGID: u32 = 0o2000;
const GROUP_EXEC: u32 = 0o010;

/// ACCESS3 bits (RFC 1813 section 3.3.4).
pub mod access_bits {
    pub const READ: u32 = 0x01;
    pub const LOOKUP: u32 = 0x02;
    pub const MODIFY: u32 = 0x04;
    pub const EXTEND: u32 = 0x08;
    pub const DELETE: u32 = 0x10;
    pub const EXECUTE: u32 = 0x20;
}

/// The permission bits (rwx) of `attrs` that apply to `caller`.
fn class_bits(caller: &Caller, attrs: &Attrs) -> u32 {
    if caller.uid == attrs.uid {
        (attrs.mode >> 6) & 7
    } else if caller.in_group(attrs.gid) {
        (attrs.mode >> 3) & 7
    } else {
        attrs.mode & 7
    }
}

/// Whether the mode bits alone grant `want` (READ|WRITE|EXEC), no owner override. Root
/// holds every bit but execute on a non-directory, which needs some execute bit.
fn mode_grants(caller: &Caller, attrs: &Attrs, want: u32) -> bool {
    if caller.uid == 0 {
        return want & EXEC == 0 || attrs.ftype == FileType::Directory || attrs.mode & 0o111 != 0;
    }
    class_bits(caller, attrs) & want == want
}

/// Whether `caller` holds every bit of `want` on an object for a call on it (the owner
/// of a regular file reads and writes it whatever its mode).
pub fn allowed(caller: &Caller, attrs: &Attrs, want: u32) -> bool {
    if caller.uid != 0
        && caller.uid == attrs.uid
        && attrs.ftype == FileType::Regular
        && want & EXEC == 0
    {
        return true;
    }
    mode_grants(caller, attrs, want)
}

fn check(caller: &Caller, attrs: &Attrs, want: u32) -> Result<(), nfsstat3> {
    if allowed(caller, attrs, want) {
        Ok(())
    } else {
        Err(nfsstat3::NFS3ERR_ACCES)
    }
}

fn directory(attrs: &Attrs) -> Result<(), nfsstat3> {
    if attrs.ftype == FileType::Directory {
        Ok(())
    } else {
        Err(nfsstat3::NFS3ERR_NOTDIR)
    }
}

fn is_owner(caller: &Caller, attrs: &Attrs) -> bool {
    caller.uid == 0 || caller.uid == attrs.uid
}

/// LOOKUP in `dir`: search permission.
pub fn may_lookup(caller: &Caller, dir: &Attrs) -> Result<(), nfsstat3> {
    directory(dir)?;
    check(caller, dir, EXEC)
}

/// READDIR of `dir`: read permission.
pub fn may_list(caller: &Caller, dir: &Attrs) -> Result<(), nfsstat3> {
    directory(dir)?;
    check(caller, dir, READ)
}

/// READ of a file: read permission, or execute (a program is read to be run).
pub fn may_read(caller: &Caller, file: &Attrs) -> Result<(), nfsstat3> {
    if allowed(caller, file, READ) {
        return Ok(());
    }
    check(caller, file, EXEC)
}

/// WRITE to a file: write permission.
pub fn may_write(caller: &Caller, file: &Attrs) -> Result<(), nfsstat3> {
    check(caller, file, WRITE)
}

/// MKNOD of `kind`: device nodes are root's to make (as mknod(2) has it); FIFOs and
/// sockets need only what any create in the directory needs.
pub fn may_mknod(caller: &Caller, kind: FileType) -> Result<(), nfsstat3> {
    let device = matches!(
        kind,
        FileType::CharDevice { .. } | FileType::BlockDevice { .. }
    );
    if device && caller.uid != 0 {
        return Err(nfsstat3::NFS3ERR_PERM);
    }
    Ok(())
}

/// CREATE, MKDIR, SYMLINK in `dir`, and the target directory of a RENAME: write and
/// search permission on it.
pub fn may_create_in(caller: &Caller, dir: &Attrs) -> Result<(), nfsstat3> {
    directory(dir)?;
    check(caller, dir, WRITE | EXEC)
}

/// Removing or renaming `child` out of `dir` (or replacing it by a RENAME): write and
/// search on the directory, and with the sticky bit only the owner of the entry or of the
/// directory (or root).
pub fn may_unlink(caller: &Caller, dir: &Attrs, child: &Attrs) -> Result<(), nfsstat3> {
    may_create_in(caller, dir)?;
    let sticky = dir.mode & 0o1000 != 0;
    if sticky && caller.uid != 0 && caller.uid != dir.uid && caller.uid != child.uid {
        return Err(nfsstat3::NFS3ERR_ACCES);
    }
    Ok(())
}

/// `mode` with the privileges a write, a truncation or a change of owner drops: setuid,
/// and setgid when the group may execute (setgid without it marks mandatory locking).
fn without_privileges(mode: u32) -> u32 {
    let mut mode = mode & !SETUID;
    if mode & GROUP_EXEC != 0 {
        mode &= !SETGID;
    }
    mode
}

/// The mode a write by `caller` leaves a file with, when it changes (anyone but root
/// drops the file's privileges).
pub fn after_write(caller: &Caller, file: &Attrs) -> Option<u32> {
    let mode = without_privileges(file.mode);
    (caller.uid != 0 && file.ftype == FileType::Regular && mode != file.mode).then_some(mode)
}

/// Decides a SETATTR of `attrs` by `caller`: the change to apply (privileges dropped as a
/// change of owner or a truncation asks), or the refusal (PERM for what only the owner or
/// root may do, ACCES for what needs write permission). `times_now`: the times asked for
/// are "now" (the server's time), not values the caller gives.
pub fn setattr(
    caller: &Caller,
    attrs: &Attrs,
    asked: &SetAttrs,
    times_now: bool,
) -> Result<SetAttrs, nfsstat3> {
    let mut set = asked.clone();
    // What does not change is no change (chown to oneself, chmod to the same mode).
    set.uid = set.uid.filter(|u| *u != attrs.uid);
    set.gid = set.gid.filter(|g| *g != attrs.gid);
    if set.uid.is_some() && caller.uid != 0 {
        return Err(nfsstat3::NFS3ERR_PERM);
    }
    if let Some(gid) = set.gid
        && !(caller.uid == 0 || (caller.uid == attrs.uid && caller.in_group(gid)))
    {
        return Err(nfsstat3::NFS3ERR_PERM);
    }
    if let Some(mode) = set.mode {
        if !is_owner(caller, attrs) {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        let group = set.gid.unwrap_or(attrs.gid);
        if caller.uid != 0 && !caller.in_group(group) && mode & SETGID != 0 {
            set.mode = Some(mode & !SETGID);
        }
    }
    if (set.atime.is_some() || set.mtime.is_some()) && !is_owner(caller, attrs) {
        // Times to a given value need ownership; to "now" write permission will do.
        if !times_now {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        check(caller, attrs, WRITE)?;
    }
    if set.size.is_some() {
        match attrs.ftype {
            FileType::Directory => return Err(nfsstat3::NFS3ERR_ISDIR),
            FileType::Regular => check(caller, attrs, WRITE)?,
            _ => return Err(nfsstat3::NFS3ERR_INVAL),
        }
    }
    let chown = set.uid.is_some() || set.gid.is_some();
    let truncate = set.size.is_some() && caller.uid != 0;
    if attrs.ftype != FileType::Directory && (chown || truncate) {
        let mode = set.mode.unwrap_or(attrs.mode);
        let dropped = without_privileges(mode);
        if dropped != attrs.mode || set.mode.is_some() {
            set.mode = Some(dropped);
        }
    }
    Ok(set)
}

/// Owner and mode of a new object made by `caller` in `dir`: the caller's uid; the
/// directory's group under setgid (and a new directory inherits the setgid bit), the
/// caller's primary group otherwise; a setgid-executable file made in a group its maker is
/// not in loses setgid.
pub fn new_object(caller: &Caller, dir: &Attrs, mode: u32, is_dir: bool) -> NewObject {
    let inherit = dir.mode & SETGID != 0;
    let gid = if inherit { dir.gid } else { caller.gid };
    let mut mode = mode & 0o7777;
    if is_dir && inherit {
        mode |= SETGID;
    }
    // A file that would run with a group its maker is not in: setgid goes (as Linux's
    // inode_init_owner does).
    if !is_dir
        && mode & (SETGID | GROUP_EXEC) == SETGID | GROUP_EXEC
        && caller.uid != 0
        && !caller.in_group(gid)
    {
        mode &= !SETGID;
    }
    NewObject {
        mode,
        uid: caller.uid,
        gid,
    }
}

/// Which of the `asked` ACCESS3 bits `caller` holds on an object: on a directory, READ is
/// listing, LOOKUP and EXECUTE are search, MODIFY, EXTEND and DELETE need write and
/// search; on other objects READ, MODIFY/EXTEND and EXECUTE are read, write and execute
/// (DELETE is the directory's to decide, so never granted on them).
pub fn access(caller: &Caller, attrs: &Attrs, asked: u32) -> u32 {
    use access_bits as a;
    let dir = attrs.ftype == FileType::Directory;
    let rules: [(u32, u32); 6] = if dir {
        [
            (a::READ, READ),
            (a::LOOKUP, EXEC),
            (a::MODIFY, WRITE | EXEC),
            (a::EXTEND, WRITE | EXEC),
            (a::DELETE, WRITE | EXEC),
            (a::EXECUTE, EXEC),
        ]
    } else {
        [
            (a::READ, READ),
            (a::LOOKUP, 0),
            (a::MODIFY, WRITE),
            (a::EXTEND, WRITE),
            (a::DELETE, 0),
            (a::EXECUTE, EXEC),
        ]
    };
    rules
        .iter()
        .filter(|(bit, need)| asked & bit != 0 && *need != 0 && mode_grants(caller, attrs, *need))
        .fold(0, |granted, (bit, _)| granted | bit)
}

#[cfg(test)]
mod tests;
