//! The Codetta protocol: identifiers, version vectors, content tags, update records,
//! requests and replies, and the frame format that carries them over QUIC streams.
//!
//! This crate does no I/O: no sockets, no runtime. Everything here can be unit-tested,
//! fuzzed and driven by deterministic simulations.

#![warn(missing_docs)]

pub mod attrs;
pub mod entropy;
pub mod error;
pub mod frame;
pub mod history;
pub mod ids;
pub mod message;
pub mod name;
pub mod replica;
pub mod tag;
pub mod update;
pub mod version;

pub use attrs::{Attrs, FileType, SetAttrs, Time};
pub use error::FsError;
pub use frame::{Frame, FrameError, FrameKind, Payload};
pub use history::{History, Relation};
pub use ids::{Fid, Incarnation, ReplicaId, UpdateId, VolumeId};
pub use message::{Reply, Request};
pub use name::{Name, NameError};
pub use tag::ContentTag;
pub use update::{Cop2, Op, RecordOutcome, UpdateRecord};
pub use version::{VersionVector, VvOrdering};

/// ALPN protocol identifier: the protocol version is negotiated by TLS.
pub const ALPN: &[u8] = b"codetta/6";

/// Most bytes one READ asks a server for and a server returns (a larger count is served
/// short, eof false): one client daemon's fetch, one server's answer, one store read.
pub const MAX_READ: u32 = 1 << 20;

/// Most names (hard links) one non-directory may have: every name is kept in the object's
/// record, which every update of the object rewrites.
pub const MAX_LINKS: u32 = 4000;

/// Size of one content block: files are stored and hashed in blocks of this many bytes
/// at block-aligned offsets.
pub const BLOCK_SIZE: u64 = 64 * 1024;
