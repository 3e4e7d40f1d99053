//! MOUNT v3 (RFC 1813 appendix I): one export, `/`, whose handle is the export's root.
//! Nothing is remembered about who mounted (DUMP lists nobody), as with any stateless
//! NFSv3 server: UMNT and UMNTALL are accepted and change nothing.

use super::results;
use crate::nfs::handle::EXPORT_ROOT;
use bytes::Bytes;
use codetta_oncrpc::XdrWriter;
use codetta_oncrpc::call::AUTH_SYS;
use codetta_oncrpc::nfs3::MountArgs;

/// The one exported path.
pub const EXPORT_PATH: &[u8] = b"/";

/// `mountstat3` values.
const MNT3_OK: u32 = 0;
const MNT3ERR_NOENT: u32 = 2;

/// Whether a MOUNT path names the export (`/`, however many slashes).
fn is_export(path: &[u8]) -> bool {
    path.iter().all(|b| *b == b'/') && !path.is_empty()
}

/// Carries out one MOUNT call; its results.
pub fn serve(call: MountArgs) -> Vec<Bytes> {
    let mut w = XdrWriter::new();
    match call {
        MountArgs::Null | MountArgs::Unmount(_) | MountArgs::UnmountAll => {}
        MountArgs::Mount(path) if is_export(&path) => {
            w.u32(MNT3_OK);
            results::handle(&mut w, &EXPORT_ROOT);
            w.u32(1).u32(AUTH_SYS);
        }
        MountArgs::Mount(_) => {
            w.u32(MNT3ERR_NOENT);
        }
        MountArgs::Dump => {
            w.bool(false);
        }
        MountArgs::Export => {
            // One export node: its path, no groups; then the end of the list.
            w.bool(true).opaque(EXPORT_PATH).bool(false).bool(false);
        }
    }
    vec![w.into_inner().freeze()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_root_is_exported() {
        assert!(is_export(b"/"));
        assert!(is_export(b"//"));
        assert!(!is_export(b""));
        assert!(!is_export(b"/home"));
        let refused = serve(MountArgs::Mount(Bytes::from_static(b"/etc")));
        assert_eq!(refused.concat(), vec![0, 0, 0, 2]);
    }
}
