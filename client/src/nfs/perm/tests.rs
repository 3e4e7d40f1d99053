//! The permission table's cases, each checked against the rules of `super`.

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

const PERM: nfsstat3 = nfsstat3::NFS3ERR_PERM;
const ACCES: nfsstat3 = nfsstat3::NFS3ERR_ACCES;

#[test]
fn mode_bits_decide() {
    let file = attrs(FileType::Regular, 0o640, 10, 20);
    assert!(allowed(&caller(10, 1), &file, READ | WRITE));
    assert!(allowed(&caller(11, 20), &file, READ));
    assert!(!allowed(&caller(11, 20), &file, WRITE));
    assert!(!allowed(&caller(12, 21), &file, READ));
    assert!(allowed(&caller(0, 0), &file, READ | WRITE));
    assert!(
        !allowed(&caller(0, 0), &file, EXEC),
        "root needs an execute bit"
    );
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
    assert_eq!(may_lookup(&stranger, &dir), Err(ACCES));
    assert_eq!(
        may_lookup(&caller(0, 0), &file),
        Err(nfsstat3::NFS3ERR_NOTDIR)
    );
    assert_eq!(
        may_read(&caller(12, 21), &attrs(FileType::Regular, 0o711, 10, 20)),
        Ok(())
    );
}

#[test]
fn sticky_directories() {
    let tmp = attrs(FileType::Directory, 0o1777, 0, 0);
    let theirs = attrs(FileType::Regular, 0o644, 10, 10);
    assert!(may_unlink(&caller(10, 10), &tmp, &theirs).is_ok());
    assert!(may_unlink(&caller(11, 10), &tmp, &theirs).is_err());
    assert!(may_unlink(&caller(0, 0), &tmp, &theirs).is_ok());
    let owned = attrs(FileType::Directory, 0o1777, 11, 0);
    assert!(
        may_unlink(&caller(11, 10), &owned, &theirs).is_ok(),
        "the directory's owner"
    );
}

#[test]
fn setattr_owner_group_mode_and_times() {
    let file = attrs(FileType::Regular, 0o644, 10, 20);
    let owner = Caller {
        uid: 10,
        gid: 20,
        gids: vec![30],
    };
    let other = caller(11, 21);
    let root = caller(0, 0);
    let setattr_ = |c: &Caller, a: &Attrs, s: &SetAttrs| setattr(c, a, s, false);
    let set = |f: fn(&mut SetAttrs)| {
        let mut s = SetAttrs::default();
        f(&mut s);
        s
    };
    // chown: root only; to oneself is no change.
    assert_eq!(
        setattr_(&owner, &file, &set(|s| s.uid = Some(11))),
        Err(PERM)
    );
    assert_eq!(
        setattr_(&other, &file, &set(|s| s.uid = Some(11))),
        Err(PERM)
    );
    assert!(setattr_(&root, &file, &set(|s| s.uid = Some(11))).is_ok());
    assert_eq!(
        setattr_(&owner, &file, &set(|s| s.uid = Some(10))),
        Ok(SetAttrs::default())
    );
    // chgrp: the owner to one of its groups, or root.
    assert!(setattr_(&owner, &file, &set(|s| s.gid = Some(30))).is_ok());
    assert_eq!(
        setattr_(&owner, &file, &set(|s| s.gid = Some(99))),
        Err(PERM)
    );
    assert_eq!(
        setattr_(&other, &file, &set(|s| s.gid = Some(21))),
        Err(PERM)
    );
    // chmod: owner or root; setgid dropped for an owner outside the file's group.
    assert_eq!(
        setattr_(&other, &file, &set(|s| s.mode = Some(0o600))),
        Err(PERM)
    );
    let outsider_owner = caller(10, 99);
    assert_eq!(
        setattr_(&outsider_owner, &file, &set(|s| s.mode = Some(0o2755))).map(|s| s.mode),
        Ok(Some(0o755))
    );
    assert_eq!(
        setattr_(&owner, &file, &set(|s| s.mode = Some(0o2755))).map(|s| s.mode),
        Ok(Some(0o2755))
    );
    // Times: a given value by the owner or root; "now" with write permission too.
    let touch = SetAttrs {
        mtime: Some(Time { secs: 5, nanos: 0 }),
        ..SetAttrs::default()
    };
    let shared = attrs(FileType::Regular, 0o666, 10, 20);
    assert_eq!(
        setattr(&other, &shared, &touch, false),
        Err(PERM),
        "a given time"
    );
    assert!(
        setattr(&other, &shared, &touch, true).is_ok(),
        "now, with write permission"
    );
    assert_eq!(
        setattr(&other, &file, &touch, true),
        Err(ACCES),
        "now, without"
    );
    assert!(setattr(&owner, &file, &touch, false).is_ok());
    // Size: write permission (the owner's override included).
    assert_eq!(
        setattr_(&other, &file, &set(|s| s.size = Some(0))),
        Err(ACCES)
    );
    assert!(
        setattr_(
            &owner,
            &attrs(FileType::Regular, 0o444, 10, 20),
            &set(|s| s.size = Some(0))
        )
        .is_ok()
    );
    assert_eq!(
        setattr_(
            &root,
            &attrs(FileType::Directory, 0o755, 0, 0),
            &set(|s| s.size = Some(0))
        ),
        Err(nfsstat3::NFS3ERR_ISDIR)
    );
}

#[test]
fn privileges_are_dropped_by_writes_truncations_and_chown() {
    let suid = attrs(FileType::Regular, 0o6755, 10, 20);
    assert_eq!(after_write(&caller(11, 21), &suid), Some(0o755));
    assert_eq!(
        after_write(&caller(10, 20), &suid),
        Some(0o755),
        "the owner too, as Linux"
    );
    assert_eq!(after_write(&caller(0, 0), &suid), None, "root keeps them");
    let locking = attrs(FileType::Regular, 0o2644, 10, 20);
    assert_eq!(
        after_write(&caller(11, 21), &locking),
        None,
        "setgid without group execute"
    );
    assert_eq!(
        after_write(&caller(11, 21), &attrs(FileType::Regular, 0o755, 10, 20)),
        None
    );
    let chown = SetAttrs {
        uid: Some(11),
        ..SetAttrs::default()
    };
    assert_eq!(
        setattr(&caller(0, 0), &suid, &chown, false).map(|s| s.mode),
        Ok(Some(0o755))
    );
    let dir = attrs(FileType::Directory, 0o2775, 10, 20);
    assert_eq!(
        setattr(&caller(0, 0), &dir, &chown, false).map(|s| s.mode),
        Ok(None),
        "directories keep setgid"
    );
    let shared = attrs(FileType::Regular, 0o4777, 10, 20);
    let truncate = SetAttrs {
        size: Some(0),
        ..SetAttrs::default()
    };
    assert_eq!(
        setattr(&caller(11, 21), &shared, &truncate, false).map(|s| s.mode),
        Ok(Some(0o777))
    );
    assert_eq!(
        setattr(&caller(0, 0), &shared, &truncate, false).map(|s| s.mode),
        Ok(None)
    );
}

#[test]
fn new_objects_take_the_callers_uid_and_the_setgid_directorys_group() {
    let plain = attrs(FileType::Directory, 0o755, 0, 7);
    let made = new_object(&caller(10, 20), &plain, 0o644, false);
    assert_eq!((made.uid, made.gid, made.mode), (10, 20, 0o644));
    let shared = attrs(FileType::Directory, 0o2775, 0, 7);
    let file = new_object(&caller(10, 20), &shared, 0o644, false);
    assert_eq!((file.gid, file.mode), (7, 0o644));
    let dir = new_object(&caller(10, 20), &shared, 0o755, true);
    assert_eq!((dir.gid, dir.mode), (7, 0o2755));
    let sneaky = new_object(&caller(10, 20), &shared, 0o2755, false);
    assert_eq!(
        (sneaky.gid, sneaky.mode),
        (7, 0o755),
        "setgid into a group not one's own"
    );
    let member = new_object(&caller(10, 7), &shared, 0o2755, false);
    assert_eq!(member.mode, 0o2755);
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
