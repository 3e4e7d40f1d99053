//! RPC call headers (RFC 5531 section 9) and AUTH_SYS credentials (appendix A).
//!
//! [`decode_call`] reads a received record: what can be answered (a call, or a call to be
//! refused: wrong RPC version, a credential that does not parse) is told apart from what
//! cannot (no transaction id, or a reply sent to a server), so the connection can go on
//! after every call it can answer.

use crate::reply::AuthStat;
use crate::xdr::{XdrError, XdrReader};
use bytes::Bytes;

/// The RPC protocol version this speaks.
pub const RPC_VERSION: u32 = 2;
/// Message types.
const CALL: u32 = 0;
/// Credential flavors.
pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;
/// Most bytes of a credential's or verifier's body (RFC 5531).
pub const MAX_AUTH_BODY: usize = 400;
/// Most bytes of an AUTH_SYS machine name, and most supplementary groups (RFC 5531 A).
pub const MAX_MACHINE_NAME: usize = 255;
pub const MAX_GROUPS: usize = 16;

/// Who a caller says it is (AUTH_SYS: nothing proves it; see the daemon's port policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Sys(AuthSys),
}

/// An AUTH_SYS credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSys {
    pub stamp: u32,
    pub machine: Bytes,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (at most [`MAX_GROUPS`]).
    pub gids: Vec<u32>,
}

/// One RPC call: its header, and its arguments as a slice of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc: u32,
    pub cred: Credential,
    pub args: Bytes,
}

/// Why a record is not a call this server can carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Too short to hold a transaction id and a message type: nothing to answer.
    #[error("a record too short for an RPC message")]
    Unanswerable,
    /// A message that is not a call (a reply sent to a server): ignored.
    #[error("an RPC message of type {msg_type}, not a call")]
    NotACall { xid: u32, msg_type: u32 },
    /// A call for another RPC version: answered MSG_DENIED RPC_MISMATCH.
    #[error("RPC version {version}")]
    RpcMismatch { xid: u32, version: u32 },
    /// A header or credential that does not parse, or a flavor this server does not take:
    /// answered MSG_DENIED AUTH_ERROR.
    #[error("credential refused ({stat:?}): {reason}")]
    BadCredential {
        xid: u32,
        stat: AuthStat,
        reason: String,
    },
}

impl CallError {
    /// The transaction id to answer, if the call can be answered.
    pub fn xid(&self) -> Option<u32> {
        match self {
            CallError::RpcMismatch { xid, .. } | CallError::BadCredential { xid, .. } => Some(*xid),
            CallError::Unanswerable | CallError::NotACall { .. } => None,
        }
    }
}

/// Reads the call in `record`.
pub fn decode_call(record: Bytes) -> Result<Call, CallError> {
    let mut r = XdrReader::new(record);
    let (xid, msg_type) = match (r.u32(), r.u32()) {
        (Ok(xid), Ok(t)) => (xid, t),
        _ => return Err(CallError::Unanswerable),
    };
    if msg_type != CALL {
        return Err(CallError::NotACall { xid, msg_type });
    }
    let bad = |stat: AuthStat, e: XdrError| CallError::BadCredential {
        xid,
        stat,
        reason: e.to_string(),
    };
    let version = r.u32().map_err(|e| bad(AuthStat::BadCred, e))?;
    if version != RPC_VERSION {
        return Err(CallError::RpcMismatch { xid, version });
    }
    let (prog, vers, proc) = match (r.u32(), r.u32(), r.u32()) {
        (Ok(p), Ok(v), Ok(c)) => (p, v, c),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return Err(bad(AuthStat::BadCred, e)),
    };
    let flavor = r.u32().map_err(|e| bad(AuthStat::BadCred, e))?;
    let body = r
        .opaque(MAX_AUTH_BODY)
        .map_err(|e| bad(AuthStat::BadCred, e))?;
    let cred = match flavor {
        AUTH_NONE => Credential::None,
        AUTH_SYS => Credential::Sys(auth_sys(body).map_err(|e| bad(AuthStat::BadCred, e))?),
        other => {
            return Err(CallError::BadCredential {
                xid,
                stat: AuthStat::RejectedCred,
                reason: format!("credential flavor {other}"),
            });
        }
    };
    // The verifier: AUTH_NONE or AUTH_SYS callers send an empty one; any is skipped.
    r.u32().map_err(|e| bad(AuthStat::BadVerf, e))?;
    r.opaque(MAX_AUTH_BODY)
        .map_err(|e| bad(AuthStat::BadVerf, e))?;
    Ok(Call {
        xid,
        prog,
        vers,
        proc,
        cred,
        args: r.rest(),
    })
}

/// The body of an AUTH_SYS credential: stamp, machine name, uid, gid, groups, and nothing
/// after.
fn auth_sys(body: Bytes) -> Result<AuthSys, XdrError> {
    let mut r = XdrReader::new(body);
    let sys = AuthSys {
        stamp: r.u32()?,
        machine: r.opaque(MAX_MACHINE_NAME)?,
        uid: r.u32()?,
        gid: r.u32()?,
        gids: r.u32_array(MAX_GROUPS)?,
    };
    r.finish()?;
    Ok(sys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::xdr::XdrWriter;

    fn call_bytes(version: u32, flavor: u32, cred: &[u8], args: &[u8]) -> Bytes {
        let mut w = XdrWriter::new();
        w.u32(0x1234)
            .u32(CALL)
            .u32(version)
            .u32(100003)
            .u32(3)
            .u32(6);
        w.u32(flavor).opaque(cred).u32(AUTH_NONE).opaque(&[]);
        w.fixed(args);
        w.into_inner().freeze()
    }

    fn sys_body(uid: u32, groups: usize) -> Vec<u8> {
        let mut w = XdrWriter::new();
        w.u32(7)
            .opaque(b"host")
            .u32(uid)
            .u32(100)
            .u32(groups as u32);
        for g in 0..groups {
            w.u32(g as u32);
        }
        w.into_inner().to_vec()
    }

    #[test]
    fn a_call_with_auth_sys_reads_whole() {
        let call = decode_call(call_bytes(2, AUTH_SYS, &sys_body(1000, 3), &[0, 0, 0, 9])).unwrap();
        assert_eq!(
            (call.xid, call.prog, call.vers, call.proc),
            (0x1234, 100003, 3, 6)
        );
        assert_eq!(
            call.cred,
            Credential::Sys(AuthSys {
                stamp: 7,
                machine: Bytes::from_static(b"host"),
                uid: 1000,
                gid: 100,
                gids: vec![0, 1, 2],
            })
        );
        assert_eq!(&call.args[..], &[0, 0, 0, 9]);
    }

    #[test]
    fn calls_that_can_be_answered_are_told_from_those_that_cannot() {
        assert_eq!(
            decode_call(Bytes::from_static(&[1, 2, 3])),
            Err(CallError::Unanswerable)
        );
        assert_eq!(
            decode_call(Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 1])),
            Err(CallError::NotACall {
                xid: 1,
                msg_type: 1
            })
        );
        assert_eq!(
            decode_call(call_bytes(3, AUTH_NONE, &[], &[])),
            Err(CallError::RpcMismatch {
                xid: 0x1234,
                version: 3
            })
        );
        // Too many groups, a credential with bytes after it, an unknown flavor, and a
        // header cut short: refused with the transaction id to answer.
        for bytes in [
            call_bytes(2, AUTH_SYS, &sys_body(0, 17), &[]),
            call_bytes(2, AUTH_SYS, &[sys_body(0, 1), vec![0; 4]].concat(), &[]),
            call_bytes(2, 6, &[], &[]),
            call_bytes(2, AUTH_NONE, &[], &[]).slice(..20),
        ] {
            let e = decode_call(bytes).unwrap_err();
            assert!(
                matches!(e, CallError::BadCredential { xid: 0x1234, .. }),
                "{e:?}"
            );
            assert_eq!(e.xid(), Some(0x1234));
        }
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let whole = call_bytes(2, AUTH_SYS, &sys_body(5, 16), &[1, 2, 3, 4]);
        for cut in 0..whole.len() - 4 {
            assert!(decode_call(whole.slice(..cut)).is_err(), "cut at {cut}");
        }
    }
}
