//! The arguments of NFSv3 (RFC 1813) and MOUNT v3 procedures, decoded from a call's bytes
//! with every length bounded before it is taken, into the front end's own types: handles,
//! names and WRITE data stay slices of the received record (no copies, no allocation a
//! peer's stated length decides). A procedure this server does not have is told apart
//! from arguments that do not decode (PROC_UNAVAIL against GARBAGE_ARGS).

use crate::xdr::{XdrError, XdrReader};
use bytes::Bytes;

/// The NFS program and the version served.
pub const NFS_PROGRAM: u32 = 100_003;
pub const NFS_VERSION: u32 = 3;
/// The MOUNT program and the version served.
pub const MOUNT_PROGRAM: u32 = 100_005;
pub const MOUNT_VERSION: u32 = 3;

/// Longest handle (RFC 1813 `NFS3_FHSIZE`).
pub const MAX_HANDLE: usize = 64;
/// Longest name or path a call may carry. Names past 255 bytes decode (and get
/// NAMETOOLONG from the procedure); past this they are garbage.
pub const MAX_NAME: usize = 4096;
/// Longest MOUNT path (RFC 1813 `MNTPATHLEN`).
pub const MAX_MOUNT_PATH: usize = 1024;

/// Why a call's arguments cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// No such procedure: answered PROC_UNAVAIL.
    #[error("procedure {0} is not served")]
    Unknown(u32),
    /// The arguments do not decode: answered GARBAGE_ARGS.
    #[error("arguments: {0}")]
    Garbage(#[from] XdrError),
}

/// A file handle as the client sent it (at most [`MAX_HANDLE`] bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle(pub Bytes);

/// A name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirOp {
    pub dir: Handle,
    pub name: Bytes,
}

/// A time to set: the server's clock, or one the client gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    DontChange,
    ServerTime,
    Client { secs: u32, nsecs: u32 },
}

/// Attributes to set (`sattr3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: SetTime,
    pub mtime: SetTime,
}

/// How CREATE treats an existing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateHow {
    Unchecked(SetAttrs),
    Guarded(SetAttrs),
    Exclusive([u8; 8]),
}

/// What MKNOD makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Char {
        attrs: SetAttrs,
        major: u32,
        minor: u32,
    },
    Block {
        attrs: SetAttrs,
        major: u32,
        minor: u32,
    },
    Socket(SetAttrs),
    Fifo(SetAttrs),
    /// A type MKNOD cannot make (a regular file, a directory, a link): BADTYPE.
    Other(u32),
}

/// The arguments of one NFSv3 call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NfsArgs {
    Null,
    GetAttr(Handle),
    SetAttr {
        object: Handle,
        attrs: SetAttrs,
        guard: Option<(u32, u32)>,
    },
    Lookup(DirOp),
    Access {
        object: Handle,
        access: u32,
    },
    ReadLink(Handle),
    Read {
        file: Handle,
        offset: u64,
        count: u32,
    },
    Write {
        file: Handle,
        offset: u64,
        count: u32,
        stable: u32,
        data: Bytes,
    },
    Create {
        place: DirOp,
        how: CreateHow,
    },
    Mkdir {
        place: DirOp,
        attrs: SetAttrs,
    },
    Symlink {
        place: DirOp,
        attrs: SetAttrs,
        target: Bytes,
    },
    Mknod {
        place: DirOp,
        kind: NodeKind,
    },
    Remove(DirOp),
    Rmdir(DirOp),
    Rename {
        from: DirOp,
        to: DirOp,
    },
    Link {
        file: Handle,
        to: DirOp,
    },
    ReadDir {
        dir: Handle,
        cookie: u64,
        verifier: [u8; 8],
        count: u32,
    },
    ReadDirPlus {
        dir: Handle,
        cookie: u64,
        verifier: [u8; 8],
        dircount: u32,
        maxcount: u32,
    },
    FsStat(Handle),
    FsInfo(Handle),
    PathConf(Handle),
    Commit {
        file: Handle,
        offset: u64,
        count: u32,
    },
}

/// The arguments of one MOUNT v3 call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountArgs {
    Null,
    Mount(Bytes),
    Dump,
    Unmount(Bytes),
    UnmountAll,
    Export,
}

fn handle(r: &mut XdrReader) -> Result<Handle, XdrError> {
    Ok(Handle(r.opaque(MAX_HANDLE)?))
}

fn dirop(r: &mut XdrReader) -> Result<DirOp, XdrError> {
    Ok(DirOp {
        dir: handle(r)?,
        name: r.opaque(MAX_NAME)?,
    })
}

fn optional<T>(
    r: &mut XdrReader,
    read: impl FnOnce(&mut XdrReader) -> Result<T, XdrError>,
) -> Result<Option<T>, XdrError> {
    if r.bool()? {
        Ok(Some(read(r)?))
    } else {
        Ok(None)
    }
}

fn set_time(r: &mut XdrReader) -> Result<SetTime, XdrError> {
    match r.u32()? {
        0 => Ok(SetTime::DontChange),
        1 => Ok(SetTime::ServerTime),
        2 => Ok(SetTime::Client {
            secs: r.u32()?,
            nsecs: r.u32()?,
        }),
        _ => Err(XdrError::Invalid("time_how")),
    }
}

fn set_attrs(r: &mut XdrReader) -> Result<SetAttrs, XdrError> {
    Ok(SetAttrs {
        mode: optional(r, XdrReader::u32)?,
        uid: optional(r, XdrReader::u32)?,
        gid: optional(r, XdrReader::u32)?,
        size: optional(r, XdrReader::u64)?,
        atime: set_time(r)?,
        mtime: set_time(r)?,
    })
}

fn verifier(r: &mut XdrReader) -> Result<[u8; 8], XdrError> {
    let bytes = r.fixed(8)?;
    let mut v = [0u8; 8];
    v.copy_from_slice(&bytes);
    Ok(v)
}

fn node_kind(r: &mut XdrReader) -> Result<NodeKind, XdrError> {
    // ftype3: 3 block device, 4 character device, 6 socket, 7 FIFO.
    Ok(match r.u32()? {
        3 => NodeKind::Block {
            attrs: set_attrs(r)?,
            major: r.u32()?,
            minor: r.u32()?,
        },
        4 => NodeKind::Char {
            attrs: set_attrs(r)?,
            major: r.u32()?,
            minor: r.u32()?,
        },
        6 => NodeKind::Socket(set_attrs(r)?),
        7 => NodeKind::Fifo(set_attrs(r)?),
        other @ 1..=5 => NodeKind::Other(other),
        _ => return Err(XdrError::Invalid("ftype3")),
    })
}

/// Decodes the arguments of NFSv3 procedure `proc`; a WRITE carries at most `max_write`
/// bytes. Nothing may follow the arguments.
pub fn decode_nfs(proc: u32, args: Bytes, max_write: usize) -> Result<NfsArgs, ArgsError> {
    let r = &mut XdrReader::new(args);
    let decoded = match proc {
        0 => NfsArgs::Null,
        1 => NfsArgs::GetAttr(handle(r)?),
        2 => NfsArgs::SetAttr {
            object: handle(r)?,
            attrs: set_attrs(r)?,
            guard: optional(r, |r| Ok((r.u32()?, r.u32()?)))?,
        },
        3 => NfsArgs::Lookup(dirop(r)?),
        4 => NfsArgs::Access {
            object: handle(r)?,
            access: r.u32()?,
        },
        5 => NfsArgs::ReadLink(handle(r)?),
        6 => NfsArgs::Read {
            file: handle(r)?,
            offset: r.u64()?,
            count: r.u32()?,
        },
        7 => NfsArgs::Write {
            file: handle(r)?,
            offset: r.u64()?,
            count: r.u32()?,
            stable: match r.u32()? {
                s @ 0..=2 => s,
                _ => return Err(XdrError::Invalid("stable_how").into()),
            },
            data: r.opaque(max_write)?,
        },
        8 => NfsArgs::Create {
            place: dirop(r)?,
            how: match r.u32()? {
                0 => CreateHow::Unchecked(set_attrs(r)?),
                1 => CreateHow::Guarded(set_attrs(r)?),
                2 => CreateHow::Exclusive(verifier(r)?),
                _ => return Err(XdrError::Invalid("createmode3").into()),
            },
        },
        9 => NfsArgs::Mkdir {
            place: dirop(r)?,
            attrs: set_attrs(r)?,
        },
        10 => NfsArgs::Symlink {
            place: dirop(r)?,
            attrs: set_attrs(r)?,
            target: r.opaque(MAX_NAME)?,
        },
        11 => NfsArgs::Mknod {
            place: dirop(r)?,
            kind: node_kind(r)?,
        },
        12 => NfsArgs::Remove(dirop(r)?),
        13 => NfsArgs::Rmdir(dirop(r)?),
        14 => NfsArgs::Rename {
            from: dirop(r)?,
            to: dirop(r)?,
        },
        15 => NfsArgs::Link {
            file: handle(r)?,
            to: dirop(r)?,
        },
        16 => NfsArgs::ReadDir {
            dir: handle(r)?,
            cookie: r.u64()?,
            verifier: verifier(r)?,
            count: r.u32()?,
        },
        17 => NfsArgs::ReadDirPlus {
            dir: handle(r)?,
            cookie: r.u64()?,
            verifier: verifier(r)?,
            dircount: r.u32()?,
            maxcount: r.u32()?,
        },
        18 => NfsArgs::FsStat(handle(r)?),
        19 => NfsArgs::FsInfo(handle(r)?),
        20 => NfsArgs::PathConf(handle(r)?),
        21 => NfsArgs::Commit {
            file: handle(r)?,
            offset: r.u64()?,
            count: r.u32()?,
        },
        other => return Err(ArgsError::Unknown(other)),
    };
    r.finish()?;
    Ok(decoded)
}

/// Decodes the arguments of MOUNT v3 procedure `proc`.
pub fn decode_mount(proc: u32, args: Bytes) -> Result<MountArgs, ArgsError> {
    let r = &mut XdrReader::new(args);
    let decoded = match proc {
        0 => MountArgs::Null,
        1 => MountArgs::Mount(r.opaque(MAX_MOUNT_PATH)?),
        2 => MountArgs::Dump,
        3 => MountArgs::Unmount(r.opaque(MAX_MOUNT_PATH)?),
        4 => MountArgs::UnmountAll,
        5 => MountArgs::Export,
        other => return Err(ArgsError::Unknown(other)),
    };
    r.finish()?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::xdr::XdrWriter;

    fn fh(w: &mut XdrWriter) {
        w.opaque(&[7; 32]);
    }

    fn no_attrs(w: &mut XdrWriter) {
        w.bool(false)
            .bool(false)
            .bool(false)
            .bool(false)
            .u32(0)
            .u32(0);
    }

    /// One call's arguments for every procedure, as a client encodes them.
    fn every_procedure() -> Vec<(u32, Bytes)> {
        let mut out = Vec::new();
        for proc in 0..22u32 {
            let mut w = XdrWriter::new();
            match proc {
                0 => {}
                1 | 5 | 18 | 19 | 20 => fh(&mut w),
                2 => {
                    fh(&mut w);
                    w.bool(true)
                        .u32(0o600)
                        .bool(false)
                        .bool(false)
                        .bool(true)
                        .u64(9);
                    w.u32(1).u32(2).u32(5).u32(6).bool(true).u32(1).u32(2);
                }
                3 | 12 | 13 => {
                    fh(&mut w);
                    w.opaque(b"name");
                }
                4 => {
                    fh(&mut w);
                    w.u32(0x3f);
                }
                6 | 21 => {
                    fh(&mut w);
                    w.u64(1 << 40).u32(4096);
                }
                7 => {
                    fh(&mut w);
                    w.u64(4096).u32(5).u32(2).opaque(b"hello");
                }
                8 => {
                    fh(&mut w);
                    w.opaque(b"f").u32(2).fixed(&[1; 8]);
                }
                9 => {
                    fh(&mut w);
                    w.opaque(b"d");
                    no_attrs(&mut w);
                }
                10 => {
                    fh(&mut w);
                    w.opaque(b"l");
                    no_attrs(&mut w);
                    w.opaque(b"/target");
                }
                11 => {
                    fh(&mut w);
                    w.opaque(b"c").u32(4);
                    no_attrs(&mut w);
                    w.u32(1).u32(3);
                }
                14 => {
                    fh(&mut w);
                    w.opaque(b"a");
                    fh(&mut w);
                    w.opaque(b"b");
                }
                15 => {
                    fh(&mut w);
                    fh(&mut w);
                    w.opaque(b"link");
                }
                16 => {
                    fh(&mut w);
                    w.u64(3).fixed(&[0; 8]).u32(4096);
                }
                17 => {
                    fh(&mut w);
                    w.u64(3).fixed(&[0; 8]).u32(4096).u32(32768);
                }
                _ => unreachable!(),
            }
            out.push((proc, w.into_inner().freeze()));
        }
        out
    }

    #[test]
    fn every_procedure_decodes_and_no_truncation_does() {
        for (proc, bytes) in every_procedure() {
            let args = decode_nfs(proc, bytes.clone(), 1 << 20);
            assert!(args.is_ok(), "procedure {proc}: {args:?}");
            for cut in 0..bytes.len() {
                assert!(
                    matches!(
                        decode_nfs(proc, bytes.slice(..cut), 1 << 20),
                        Err(ArgsError::Garbage(_))
                    ),
                    "procedure {proc} cut at {cut}"
                );
            }
            let mut longer = bytes.to_vec();
            longer.extend([0; 4]);
            assert!(
                decode_nfs(proc, Bytes::from(longer), 1 << 20).is_err(),
                "trailing bytes, {proc}"
            );
        }
        assert_eq!(
            decode_nfs(22, Bytes::new(), 1 << 20),
            Err(ArgsError::Unknown(22))
        );
    }

    #[test]
    fn what_decodes_is_what_was_sent() {
        let all = every_procedure();
        let NfsArgs::Write {
            offset,
            count,
            stable,
            data,
            ..
        } = decode_nfs(7, all[7].1.clone(), 1 << 20).unwrap()
        else {
            panic!("a WRITE")
        };
        assert_eq!(
            (offset, count, stable, &data[..]),
            (4096, 5, 2, &b"hello"[..])
        );
        // The data is a slice of the record, not a copy.
        assert!(all[7].1.as_ptr_range().contains(&data.as_ptr()));
        assert_eq!(
            decode_nfs(11, all[11].1.clone(), 1 << 20).unwrap(),
            NfsArgs::Mknod {
                place: DirOp {
                    dir: Handle(Bytes::from_static(&[7; 32])),
                    name: Bytes::from_static(b"c"),
                },
                kind: NodeKind::Char {
                    attrs: SetAttrs {
                        mode: None,
                        uid: None,
                        gid: None,
                        size: None,
                        atime: SetTime::DontChange,
                        mtime: SetTime::DontChange,
                    },
                    major: 1,
                    minor: 3,
                },
            }
        );
        // A WRITE past the size the server announces, or a handle past 64 bytes: garbage.
        assert!(matches!(
            decode_nfs(7, all[7].1.clone(), 4),
            Err(ArgsError::Garbage(_))
        ));
        let mut long = XdrWriter::new();
        long.opaque(&[0; 65]);
        assert!(matches!(
            decode_nfs(1, long.into_inner().freeze(), 1 << 20),
            Err(ArgsError::Garbage(_))
        ));
    }

    #[test]
    fn mount_calls_decode() {
        let mut w = XdrWriter::new();
        w.opaque(b"/");
        let path = w.into_inner().freeze();
        assert_eq!(
            decode_mount(1, path.clone()),
            Ok(MountArgs::Mount(Bytes::from_static(b"/")))
        );
        assert_eq!(
            decode_mount(3, path),
            Ok(MountArgs::Unmount(Bytes::from_static(b"/")))
        );
        assert_eq!(decode_mount(5, Bytes::new()), Ok(MountArgs::Export));
        assert_eq!(decode_mount(6, Bytes::new()), Err(ArgsError::Unknown(6)));
    }
}
