//! The calls the NFS port carries out: NFSv3 and MOUNT v3 on one port, each call's
//! arguments decoded by `codetta_oncrpc` (bounded, without copies) and handed to the
//! procedures with the caller its credential names.

use super::backend::Backend;
use super::nfs::WriteVerifier;
use super::port::{RpcReply, RpcService};
use super::replay::{CallKey, ReplayCache, Seen};
use super::{mount, nfs};
use crate::nfs::MAX_IO;
use crate::nfs::creds::Caller;
use bytes::Bytes;
use codetta_oncrpc::call::{Call, Credential};
use codetta_oncrpc::nfs3::{
    ArgsError, MOUNT_PROGRAM, MOUNT_VERSION, NFS_PROGRAM, NFS_VERSION, decode_mount, decode_nfs,
};
use codetta_oncrpc::reply::AcceptStat;
use nfs3_types::nfs3::nfsstat3;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

/// NFSv3 and MOUNT over the file system.
pub struct FrontEnd<B> {
    fs: B,
    replies: Mutex<ReplayCache>,
    verifier: WriteVerifier,
}

impl<B: Backend> FrontEnd<B> {
    /// Serves `fs`, answering WRITE and COMMIT with `verifier`.
    pub fn new(fs: B, verifier: WriteVerifier) -> FrontEnd<B> {
        FrontEnd {
            fs,
            replies: Mutex::new(ReplayCache::default()),
            verifier,
        }
    }

    fn replies(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        self.replies.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An NFS call, through the duplicate-request cache when it changes something
    /// (every such procedure but WRITE, which a resend repeats harmlessly).
    async fn nfs_call(&self, call: Call, peer: SocketAddr) -> RpcReply {
        // Arguments that do not decode are refused before anything is remembered.
        let key = matches!(call.proc, 2 | 8..=15).then(|| {
            let credential = credential_bytes(&call.cred);
            CallKey::new(
                peer.ip(),
                call.xid,
                call.prog,
                call.proc,
                &[&credential, &call.args],
            )
        });
        let args = match decode_nfs(call.proc, call.args, MAX_IO as usize) {
            Ok(args) => args,
            Err(e) => return refused(e, peer, call.prog),
        };
        if let Some(key) = key {
            match self.replies().begin(key, Instant::now()) {
                Seen::New => {}
                Seen::InProgress => return RpcReply::Dropped,
                Seen::Done(results) => return RpcReply::Accepted(AcceptStat::Success, results),
            }
        }
        let caller = Caller::from_credential(&call.cred);
        let results = nfs::serve(&self.fs, &caller, args, self.verifier).await;
        if let Some(key) = key {
            // JUKEBOX asks for the call again: it must be carried out again.
            if asks_for_retry(&results) {
                self.replies().abandon(&key);
            } else {
                self.replies().finish(key, results.clone());
            }
        }
        RpcReply::Accepted(AcceptStat::Success, results)
    }
}

/// The credential as the duplicate-request cache tells callers apart by it.
fn credential_bytes(cred: &Credential) -> Vec<u8> {
    match cred {
        Credential::None => Vec::new(),
        Credential::Sys(sys) => {
            let mut out = Vec::with_capacity(8 + 4 * sys.gids.len());
            for id in [sys.uid, sys.gid].iter().chain(&sys.gids) {
                out.extend_from_slice(&id.to_le_bytes());
            }
            out
        }
    }
}

/// Whether results start with the JUKEBOX status.
fn asks_for_retry(results: &[Bytes]) -> bool {
    results
        .first()
        .and_then(|r| r.get(..4))
        .is_some_and(|s| s == (nfsstat3::NFS3ERR_JUKEBOX as u32).to_be_bytes())
}

fn refused(e: ArgsError, peer: SocketAddr, prog: u32) -> RpcReply {
    tracing::debug!(%peer, prog, "NFS call not carried out: {e}");
    match e {
        ArgsError::Unknown(_) => RpcReply::Accepted(AcceptStat::ProcUnavail, Vec::new()),
        ArgsError::Garbage(_) => RpcReply::Accepted(AcceptStat::GarbageArgs, Vec::new()),
    }
}

impl<B: Backend> RpcService for FrontEnd<B> {
    async fn call(&self, call: Call, peer: SocketAddr) -> RpcReply {
        match (call.prog, call.vers) {
            (NFS_PROGRAM, NFS_VERSION) => self.nfs_call(call, peer).await,
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
