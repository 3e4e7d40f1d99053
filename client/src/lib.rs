//! The Codetta client daemon (Coda's Venus): a modify log in its own redb, a shipper that
//! sends the log to the servers over QUIC, and an NFSv3 endpoint (nfs3_server) on loopback
//! through which the OS's own NFS client mounts the file system.

pub mod cache;
pub mod chain_file;
pub mod chains;
pub mod config;
pub mod daemon;
pub mod entry_file;
pub mod error;
pub mod front;
pub mod group;
pub mod landing;
mod legacy;
pub mod link;
pub mod log;
pub mod marks_file;
pub mod missed;
pub mod nfs;
pub mod promises;
mod read_source;
pub mod replicate;
mod segments;
pub mod tracker;
pub mod unstable;
pub mod volume_client;
pub mod volumes;

pub use config::ClientConfig;
pub use daemon::ClientDaemon;
pub use error::ClientError;
