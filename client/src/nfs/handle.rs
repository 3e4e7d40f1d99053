//! NFS file handles: a fixed 8-byte generation and a fid (volume, vnode, uniquifier), so a
//! handle stays valid across restarts of the client daemon and of the servers. The layout
//! (the generation little-endian, then the fid's 16 bytes) is the one nfs3_server gave
//! handles before the front end was ours, so handles the kernel holds stay valid.

use codetta_wire::Fid;
use nfs3_types::nfs3::nfsstat3;

/// The generation stamped into every handle; fixed, so handles never go stale on a restart.
/// (It is also the WRITE verifier, which is why acknowledged data is never held only in
/// memory: a restarted daemon cannot ask the kernel to resend.)
pub const HANDLE_GENERATION: u64 = 0x436f_6474_6574_7461; // "Codetta"

/// Bytes in a handle.
pub const HANDLE_LEN: usize = 8 + Fid::ENCODED_LEN;

/// The handle of the export's root: no volume's fid (volume 0 is never used); every call
/// on it goes to the root of the catalogue's current root volume, so `set-root` shows a
/// new root to mounted clients without a remount.
pub const EXPORT_ROOT: Fid = Fid {
    volume: codetta_wire::VolumeId(0),
    vnode: Fid::ROOT_VNODE,
    unique: 0,
};

/// The handle `fid` is shown under.
pub fn encode(fid: &Fid) -> [u8; HANDLE_LEN] {
    let mut out = [0u8; HANDLE_LEN];
    let (generation, rest) = out.split_at_mut(8);
    generation.copy_from_slice(&HANDLE_GENERATION.to_le_bytes());
    rest.copy_from_slice(&fid.to_bytes());
    out
}

/// The fid in a handle a client sent: BADHANDLE for bytes that are no handle of ours,
/// STALE for one of another generation.
pub fn decode(bytes: &[u8]) -> Result<Fid, nfsstat3> {
    if bytes.len() != HANDLE_LEN {
        return Err(nfsstat3::NFS3ERR_BADHANDLE);
    }
    let (generation, rest) = bytes.split_at(8);
    if generation != HANDLE_GENERATION.to_le_bytes() {
        return Err(nfsstat3::NFS3ERR_STALE);
    }
    Fid::from_bytes(rest).ok_or(nfsstat3::NFS3ERR_BADHANDLE)
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
        let h = encode(&fid);
        assert_eq!(decode(&h), Ok(fid));
        assert_eq!(decode(&[1, 2, 3]), Err(nfsstat3::NFS3ERR_BADHANDLE));
        let mut other = h;
        other[0] ^= 1;
        assert_eq!(decode(&other), Err(nfsstat3::NFS3ERR_STALE));
    }
}
