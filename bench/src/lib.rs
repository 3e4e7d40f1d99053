//! Codetta's bench harness: workloads run through any NFSv3 endpoint with a userspace
//! client, next to baselines measured in the same run (the local disk and the NFS layer
//! alone, nfs3_server's in-memory file system), so ratios survive a noisy machine.

pub mod nfs;
pub mod repair;
pub mod report;
pub mod targets;
pub mod workloads;

pub use report::{Figure, Report};
