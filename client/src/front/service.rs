//! The calls the NFS port carries out: NFSv3 and MOUNT v3 on one port, each call's
//! arguments decoded by `codetta_oncrpc` (bounded, without copies) and handed to the
//! procedures with the caller its credential names.

use super::port::{RpcReply, RpcService};
use super::{mount, nfs};
use crate::nfs::creds::Caller;
use crate::nfs::{CodettaFs, MAX_IO};
use codetta_oncrpc::call::Call;
use codetta_oncrpc::nfs3::{
    ArgsError, MOUNT_PROGRAM, MOUNT_VERSION, NFS_PROGRAM, NFS_VERSION, decode_mount, decode_nfs,
};
use codetta_oncrpc::reply::AcceptStat;
use std::net::SocketAddr;

/// NFSv3 and MOUNT over the file system.
pub struct FrontEnd {
    fs: CodettaFs,
}

impl FrontEnd {
    pub fn new(fs: CodettaFs) -> FrontEnd {
        FrontEnd { fs }
    }
}

fn refused(e: ArgsError, peer: SocketAddr, prog: u32) -> RpcReply {
    tracing::debug!(%peer, prog, "NFS call not carried out: {e}");
    match e {
        ArgsError::Unknown(_) => RpcReply::Accepted(AcceptStat::ProcUnavail, Vec::new()),
        ArgsError::Garbage(_) => RpcReply::Accepted(AcceptStat::GarbageArgs, Vec::new()),
    }
}

impl RpcService for FrontEnd {
    async fn call(&self, call: Call, peer: SocketAddr) -> RpcReply {
        match (call.prog, call.vers) {
            (NFS_PROGRAM, NFS_VERSION) => match decode_nfs(call.proc, call.args, MAX_IO as usize) {
                Ok(args) => {
                    let caller = Caller::from_credential(&call.cred);
                    let results = nfs::serve(&self.fs, &caller, args).await;
                    RpcReply::Accepted(AcceptStat::Success, results)
                }
                Err(e) => refused(e, peer, call.prog),
            },
            (MOUNT_PROGRAM, MOUNT_VERSION) => match decode_mount(call.proc, call.args) {
                Ok(args) => RpcReply::Accepted(AcceptStat::Success, mount::serve(args)),
                Err(e) => refused(e, peer, call.prog),
            },
            (NFS_PROGRAM, _) => RpcReply::Accepted(
                AcceptStat::ProgMismatch {
                    low: NFS_VERSION,
                    high: NFS_VERSION,
                },
                Vec::new(),
            ),
            (MOUNT_PROGRAM, _) => RpcReply::Accepted(
                AcceptStat::ProgMismatch {
                    low: MOUNT_VERSION,
                    high: MOUNT_VERSION,
                },
                Vec::new(),
            ),
            _ => RpcReply::Accepted(AcceptStat::ProgUnavail, Vec::new()),
        }
    }
}
