//! codetta-server: the server (Vice) of Codetta.
//!
//! [`store`] keeps volume replicas in one redb database: the namespace, file contents as
//! content-addressed chunks, version vectors and content tags, and the per-client record of
//! applied updates. It is synchronous; the network service calls it from blocking tasks.

pub mod store;

pub mod admin;
pub mod callbacks;
pub mod catalogue;
pub mod clock;
pub mod collect;
pub mod config;
pub mod conflict;
pub mod context;
pub mod daemon;
pub(crate) mod decode_check;
#[doc(hidden)]
pub mod fuzzing;
pub mod heal;
pub mod leases;
pub mod pacing;
pub mod peer_error;
pub mod peers;
pub mod periodic;
pub mod requests;
pub mod resolver;
pub mod service;
pub mod volatile;
pub mod volumes;

pub use config::ServerConfig;
pub use daemon::ServerDaemon;
