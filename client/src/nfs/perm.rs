//! Permission checks with the caller's uid/gid against the mode bits (the daemon enforces
//! them: NFSv3 AUTH_SYS authenticates nobody, so the endpoint listens on loopback only).
//!
//! Like the Linux NFS server, the owner of a regular file may read and write it whatever
//! its mode ("owner override"): a process that created a file read-only must still be able
//! to write through the descriptor it opened. uid 0 may do anything.

use super::creds::Caller;
use codetta_wire::{Attrs, FileType};
use nfs3_types::nfs3::nfsstat3;

pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 1;

/// Whether `caller` holds every bit of `want` (READ|WRITE|EXEC) on an object.
pub fn allowed(caller: &Caller, attrs: &Attrs, want: u32) -> bool {
    if caller.uid == 0 {
        return true;
    }
    if caller.uid == attrs.uid && attrs.ftype == FileType::Regular && want & EXEC == 0 {
        return true;
    }
    let bits = if caller.uid == attrs.uid {
        (attrs.mode >> 6) & 7
    } else if caller.in_group(attrs.gid) {
        (attrs.mode >> 3) & 7
    } else {
        attrs.mode & 7
    };
    bits & want == want
}

/// ACCESS3 bits (RFC 1813 section 3.3.4).
pub mod access_bits {
    pub const READ: u32 = 0x01;
    pub const LOOKUP: u32 = 0x02;
    pub const MODIFY: u32 = 0x04;
    pub const EXTEND: u32 = 0x08;
    pub const DELETE: u32 = 0x10;
    pub const EXECUTE: u32 = 0x20;
}

/// Whether the mode bits alone grant `want` (no owner override: ACCESS answers what an
/// open() may do). Root holds every bit but execute, which needs some execute bit on a
/// file.
fn mode_grants(caller: &Caller, attrs: &Attrs, want: u32) -> bool {
    if caller.uid == 0 {
        return want & EXEC == 0 || attrs.ftype == FileType::Directory || attrs.mode & 0o111 != 0;
    }
    let bits = if caller.uid == attrs.uid {
        (attrs.mode >> 6) & 7
    } else if caller.in_group(attrs.gid) {
        (attrs.mode >> 3) & 7
    } else {
        attrs.mode & 7
    };
    bits & want == want
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

/// `Ok` if allowed, `ACCES` otherwise.
pub fn check(caller: &Caller, attrs: &Attrs, want: u32) -> Result<(), nfsstat3> {
    if allowed(caller, attrs, want) {
        Ok(())
    } else {
        Err(nfsstat3::NFS3ERR_ACCES)
    }
}

/// Removing or renaming `child` out of `dir`: write+search on the directory, and with the
/// sticky bit only the owner of the entry or of the directory (or root).
pub fn check_unlink(caller: &Caller, dir: &Attrs, child: &Attrs) -> Result<(), nfsstat3> {
    check(caller, dir, WRITE | EXEC)?;
    let sticky = dir.mode & 0o1000 != 0;
    if sticky && caller.uid != 0 && caller.uid != dir.uid && caller.uid != child.uid {
        return Err(nfsstat3::NFS3ERR_ACCES);
    }
    Ok(())
}

/// Only the owner (or root) may change mode, times to a given value, or the group (to one
/// of the caller's groups); only root may give a file away.
pub fn check_owner(caller: &Caller, attrs: &Attrs) -> Result<(), nfsstat3> {
    if caller.uid == 0 || caller.uid == attrs.uid {
        Ok(())
    } else {
        Err(nfsstat3::NFS3ERR_PERM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codetta_wire::Time;

    fn attrs(ftype: FileType, mode: u32, uid: u32, gid: u32) -> Attrs {
        Attrs {
            ftype,
            mode,
            uid,
            gid,
            size: 0,
            nlink: 1,
            atime: Time::default(),
            mtime: Time::default(),
            ctime: Time::default(),
        }
    }

    fn caller(uid: u32, gid: u32) -> Caller {
        Caller {
            uid,
            gid,
            gids: vec![50],
        }
    }

    #[test]
    fn mode_bits_decide() {
        let file = attrs(FileType::Regular, 0o640, 10, 20);
        assert!(allowed(&caller(10, 1), &file, READ | WRITE));
        assert!(allowed(&caller(11, 20), &file, READ));
        assert!(!allowed(&caller(11, 20), &file, WRITE));
        assert!(!allowed(&caller(12, 21), &file, READ));
        assert!(allowed(&caller(0, 0), &file, READ | WRITE));
        let readonly = attrs(FileType::Regular, 0o444, 10, 20);
        assert!(allowed(&caller(10, 1), &readonly, WRITE), "owner override");
        let dir = attrs(FileType::Directory, 0o750, 10, 50);
        assert!(
            allowed(&caller(12, 1), &dir, READ | EXEC),
            "supplementary group"
        );
        assert!(!allowed(&caller(12, 1), &dir, WRITE));
        let stranger = Caller {
            uid: 13,
            gid: 2,
            gids: vec![],
        };
        assert!(!allowed(&stranger, &dir, EXEC));
    }

    #[test]
    fn access_answers_what_open_may_do() {
        use access_bits as a;
        let all = 0x3f;
        let file = attrs(FileType::Regular, 0o640, 10, 20);
        assert_eq!(
            access(&caller(10, 1), &file, all),
            a::READ | a::MODIFY | a::EXTEND
        );
        assert_eq!(access(&caller(11, 20), &file, all), a::READ);
        assert_eq!(access(&caller(12, 21), &file, all), 0);
        let readonly = attrs(FileType::Regular, 0o444, 10, 20);
        assert_eq!(
            access(&caller(10, 1), &readonly, a::MODIFY),
            0,
            "no owner override"
        );
        assert_eq!(
            access(&caller(0, 0), &file, all),
            a::READ | a::MODIFY | a::EXTEND
        );
        let script = attrs(FileType::Regular, 0o700, 10, 20);
        assert_eq!(access(&caller(0, 0), &script, a::EXECUTE), a::EXECUTE);
        let dir = attrs(FileType::Directory, 0o751, 10, 20);
        assert_eq!(access(&caller(10, 1), &dir, all), all);
        assert_eq!(
            access(&caller(11, 20), &dir, all),
            a::READ | a::LOOKUP | a::EXECUTE
        );
        assert_eq!(access(&caller(12, 21), &dir, all), a::LOOKUP | a::EXECUTE);
        assert_eq!(
            access(&caller(12, 21), &dir, a::READ),
            0,
            "only what was asked"
        );
    }

    #[test]
    fn sticky_directories() {
        let tmp = attrs(FileType::Directory, 0o1777, 0, 0);
        let theirs = attrs(FileType::Regular, 0o644, 10, 10);
        assert!(check_unlink(&caller(10, 10), &tmp, &theirs).is_ok());
        assert!(check_unlink(&caller(11, 10), &tmp, &theirs).is_err());
        assert!(check_owner(&caller(11, 10), &theirs).is_err());
    }
}
