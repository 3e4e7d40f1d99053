//! NFS file handles: a fid (volume, vnode, uniquifier), so a handle stays valid across
//! restarts of the client daemon and of the servers. nfs3_server prefixes it with a fixed
//! generation ([`HANDLE_GENERATION`]).

use codetta_wire::Fid;
use nfs3_server::vfs::FileHandle;

/// The generation nfs3_server stamps into every handle; fixed, so handles never go stale
/// on a restart. (It is also the WRITE verifier, which is why acknowledged data is never
/// held only in memory: a restarted daemon cannot ask the kernel to resend.)
pub const HANDLE_GENERATION: u64 = 0x436f_6474_6574_7461; // "Codetta"

/// The handle of the export's root: no volume's fid (volume 0 is never used); every call
/// on it goes to the root of the catalogue's current root volume, so `set-root` shows a
/// new root to mounted clients without a remount.
pub const EXPORT_ROOT: Fid = Fid {
    volume: codetta_wire::VolumeId(0),
    vnode: Fid::ROOT_VNODE,
    unique: 0,
};

/// Our part of an NFS handle: the 16-byte fid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FidHandle {
    pub fid: Fid,
    bytes: [u8; Fid::ENCODED_LEN],
}

impl FidHandle {
    pub fn new(fid: Fid) -> FidHandle {
        FidHandle {
            fid,
            bytes: fid.to_bytes(),
        }
    }
}

impl FileHandle for FidHandle {
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Fid::from_bytes(bytes).map(FidHandle::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codetta_wire::VolumeId;

    #[test]
    fn handle_round_trip_and_garbage() {
        let fid = Fid {
            volume: VolumeId(3),
            vnode: 1 << 40,
            unique: 7,
        };
        let h = FidHandle::new(fid);
        assert_eq!(FidHandle::from_bytes(h.as_bytes()), Some(h));
        assert_eq!(FidHandle::from_bytes(&[1, 2, 3]), None);
    }
}
