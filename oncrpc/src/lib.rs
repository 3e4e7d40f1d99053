//! ONC RPC version 2 (RFC 5531) over TCP, as the NFS front end of the client daemon speaks
//! it to the operating system's NFS client: record marking ([`record`]), the XDR the
//! headers are made of ([`xdr`]), call headers with their AUTH_SYS credentials ([`call`]),
//! the arguments of NFSv3 and MOUNT procedures ([`nfs3`])
//! and reply headers ([`reply`]).
//!
//! Everything here reads bytes any local process may send. What must hold: no length a
//! peer states is trusted before it is checked against a bound and against the bytes that
//! are really there, so nothing a peer sends makes this code allocate more than the bytes
//! it actually sent, up to the configured record size; no input makes it panic; a call
//! whose header cannot be read is told apart from one that can be answered with an error.
//! No sockets, no runtime: the connection handling lives with the daemon.

pub mod call;
pub mod nfs3;
pub mod record;
pub mod reply;
pub mod xdr;

pub use call::{AuthSys, Call, CallError, Credential, decode_call};
pub use record::{RecordError, RecordLimits, RecordReader};
pub use reply::{AcceptStat, AuthStat};
pub use xdr::{XdrError, XdrReader, XdrWriter};
