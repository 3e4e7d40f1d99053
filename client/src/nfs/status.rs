//! The one table from Codetta errors to NFS statuses. STALE only when the object is really
//! gone (clients drop cached data on STALE); outages become JUKEBOX (retry) and then IO.

use crate::error::ClientError;
use codetta_wire::{FsError, NameError};
use nfs3_types::nfs3::nfsstat3;

/// Maps a client error to the status an NFS caller sees.
pub fn nfs_status(error: &ClientError) -> nfsstat3 {
    use nfsstat3::*;
    match error {
        ClientError::Fs(fs) => match fs {
            FsError::NotFound => NFS3ERR_NOENT,
            FsError::Exists => NFS3ERR_EXIST,
            FsError::NotDir => NFS3ERR_NOTDIR,
            FsError::IsDir => NFS3ERR_ISDIR,
            FsError::NotEmpty => NFS3ERR_NOTEMPTY,
            FsError::BadName => NFS3ERR_INVAL,
            FsError::NameTooLong => NFS3ERR_NAMETOOLONG,
            FsError::NoSpace => NFS3ERR_NOSPC,
            FsError::Stale => NFS3ERR_STALE,
            FsError::Access | FsError::WrongRole => NFS3ERR_ACCES,
            FsError::Invalid => NFS3ERR_INVAL,
            FsError::UnknownVolume => NFS3ERR_STALE,
            FsError::Malformed(_)
            | FsError::OutOfOrder
            | FsError::Storage(_)
            | FsError::Internal(_)
            | FsError::Corrupt => NFS3ERR_IO,
            // This server cannot serve the call yet (its catalogue has not started).
            FsError::Unavailable(_) => NFS3ERR_JUKEBOX,
            // Replicas disagree about the name: resolution is under way, retry shortly.
            FsError::Diverged => NFS3ERR_JUKEBOX,
            // The volume's group changed under this client: it refreshes, the caller retries.
            FsError::StaleEpoch { .. } => NFS3ERR_JUKEBOX,
            // No reachable replica holds the object whole yet: resolution is installing it.
            FsError::Incomplete => NFS3ERR_JUKEBOX,
            FsError::CrossDevice => NFS3ERR_XDEV,
            FsError::TooManyLinks => NFS3ERR_MLINK,
            _ => NFS3ERR_IO,
        },
        // Its own status (NOSPC stays NOSPC), but never one that asks for a retry.
        ClientError::WriteRefused(e) => match nfs_status(&ClientError::Fs(e.clone())) {
            NFS3ERR_JUKEBOX => NFS3ERR_IO,
            status => status,
        },
        ClientError::Unavailable | ClientError::LogFull => NFS3ERR_JUKEBOX,
        ClientError::Down | ClientError::Storage(_) | ClientError::Protocol(_) => NFS3ERR_IO,
    }
}

/// Maps a refused name to its status.
pub fn name_status(error: NameError) -> nfsstat3 {
    match error {
        NameError::TooLong => nfsstat3::NFS3ERR_NAMETOOLONG,
        NameError::Dot => nfsstat3::NFS3ERR_EXIST,
        _ => nfsstat3::NFS3ERR_INVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfsstat3::*;

    #[test]
    fn mapping_table() {
        let table: &[(ClientError, nfsstat3)] = &[
            (FsError::NotFound.into(), NFS3ERR_NOENT),
            (FsError::Exists.into(), NFS3ERR_EXIST),
            (FsError::NotDir.into(), NFS3ERR_NOTDIR),
            (FsError::IsDir.into(), NFS3ERR_ISDIR),
            (FsError::NotEmpty.into(), NFS3ERR_NOTEMPTY),
            (FsError::NameTooLong.into(), NFS3ERR_NAMETOOLONG),
            (FsError::NoSpace.into(), NFS3ERR_NOSPC),
            (FsError::Stale.into(), NFS3ERR_STALE),
            (FsError::Access.into(), NFS3ERR_ACCES),
            (FsError::Corrupt.into(), NFS3ERR_IO),
            (FsError::Storage("disk".into()).into(), NFS3ERR_IO),
            (FsError::OutOfOrder.into(), NFS3ERR_IO),
            (FsError::Diverged.into(), NFS3ERR_JUKEBOX),
            (FsError::Incomplete.into(), NFS3ERR_JUKEBOX),
            (FsError::CrossDevice.into(), NFS3ERR_XDEV),
            (FsError::TooManyLinks.into(), NFS3ERR_MLINK),
            (ClientError::WriteRefused(FsError::NoSpace), NFS3ERR_NOSPC),
            (ClientError::WriteRefused(FsError::Incomplete), NFS3ERR_IO),
            (ClientError::WriteRefused(FsError::Diverged), NFS3ERR_IO),
            (ClientError::Unavailable, NFS3ERR_JUKEBOX),
            (ClientError::LogFull, NFS3ERR_JUKEBOX),
            (ClientError::Down, NFS3ERR_IO),
            (ClientError::Storage("x".into()), NFS3ERR_IO),
            (ClientError::Protocol("x".into()), NFS3ERR_IO),
        ];
        for (error, status) in table {
            assert_eq!(nfs_status(error), *status, "{error:?}");
        }
        // Storage and network failures never claim the object is gone.
        for (error, status) in table {
            if !matches!(error, ClientError::Fs(FsError::Stale)) {
                assert_ne!(*status, NFS3ERR_STALE, "{error:?}");
            }
        }
        assert_eq!(name_status(NameError::TooLong), NFS3ERR_NAMETOOLONG);
        assert_eq!(name_status(NameError::BadByte), NFS3ERR_INVAL);
    }
}
