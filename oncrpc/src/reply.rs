//! RPC reply headers (RFC 5531 section 9). A successful reply is the header of
//! [`accepted`] with [`AcceptStat::Success`] followed by the procedure's results, which
//! the caller appends; every refusal is a header alone.

use crate::call::RPC_VERSION;
use crate::xdr::XdrWriter;

/// Message type of a reply, and the reply statuses.
const REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;

/// How an accepted call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStat {
    /// Carried out: the results follow.
    Success,
    /// No such program here.
    ProgUnavail,
    /// The program, but not that version: the versions served.
    ProgMismatch { low: u32, high: u32 },
    /// No such procedure in the program.
    ProcUnavail,
    /// The arguments do not decode.
    GarbageArgs,
    /// The server failed (memory, say).
    SystemErr,
}

impl AcceptStat {
    fn code(self) -> u32 {
        match self {
            AcceptStat::Success => 0,
            AcceptStat::ProgUnavail => 1,
            AcceptStat::ProgMismatch { .. } => 2,
            AcceptStat::ProcUnavail => 3,
            AcceptStat::GarbageArgs => 4,
            AcceptStat::SystemErr => 5,
        }
    }
}

/// Why a call's credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStat {
    /// The credential does not parse.
    BadCred,
    /// A credential this server does not take (a flavor it does not know).
    RejectedCred,
    /// The verifier does not parse.
    BadVerf,
    /// Valid, but not enough for this call (an unprivileged source port, say).
    TooWeak,
}

impl AuthStat {
    fn code(self) -> u32 {
        match self {
            AuthStat::BadCred => 1,
            AuthStat::RejectedCred => 2,
            AuthStat::BadVerf => 3,
            AuthStat::TooWeak => 5,
        }
    }
}

/// The header of an accepted reply to `xid` (an empty AUTH_NONE verifier).
pub fn accepted(xid: u32, stat: AcceptStat) -> XdrWriter {
    let mut w = XdrWriter::new();
    w.u32(xid).u32(REPLY).u32(MSG_ACCEPTED);
    w.u32(crate::call::AUTH_NONE).opaque(&[]);
    w.u32(stat.code());
    if let AcceptStat::ProgMismatch { low, high } = stat {
        w.u32(low).u32(high);
    }
    w
}

/// A refusal of `xid` for its RPC version (this server speaks version 2 only).
pub fn rpc_mismatch(xid: u32) -> XdrWriter {
    let mut w = XdrWriter::new();
    w.u32(xid).u32(REPLY).u32(MSG_DENIED).u32(RPC_MISMATCH);
    w.u32(RPC_VERSION).u32(RPC_VERSION);
    w
}

/// A refusal of `xid` for its credential.
pub fn auth_error(xid: u32, stat: AuthStat) -> XdrWriter {
    let mut w = XdrWriter::new();
    w.u32(xid).u32(REPLY).u32(MSG_DENIED).u32(AUTH_ERROR);
    w.u32(stat.code());
    w
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn words(w: XdrWriter) -> Vec<u32> {
        w.into_inner()
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// The headers, word by word, as RFC 5531 lays them out.
    #[test]
    fn headers_are_laid_out_as_the_rfc_says() {
        assert_eq!(
            words(accepted(9, AcceptStat::Success)),
            vec![9, 1, 0, 0, 0, 0]
        );
        assert_eq!(
            words(accepted(9, AcceptStat::GarbageArgs)),
            vec![9, 1, 0, 0, 0, 4]
        );
        assert_eq!(
            words(accepted(9, AcceptStat::ProgMismatch { low: 3, high: 3 })),
            vec![9, 1, 0, 0, 0, 2, 3, 3]
        );
        assert_eq!(words(rpc_mismatch(9)), vec![9, 1, 1, 0, 2, 2]);
        assert_eq!(words(auth_error(9, AuthStat::TooWeak)), vec![9, 1, 1, 1, 5]);
    }
}
