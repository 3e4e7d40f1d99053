//! The client daemon's own NFSv3 and MOUNT front end: the NFS port's connections with
//! every bound a local peer could push against ([`port`]), the calls they carry
//! ([`service`]) with replies to resent calls ([`replay`]), the procedures ([`nfs`],
//! [`mount`]) and the XDR of their results ([`results`]), on a [`backend`]. Arguments are
//! decoded by `codetta_oncrpc`; what a call does is decided by the backend (`crate::nfs`
//! for Codetta).

pub mod backend;
pub mod mount;
pub mod nfs;
pub mod port;
pub mod replay;
pub mod results;
pub mod service;
