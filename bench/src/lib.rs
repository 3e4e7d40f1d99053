//! Codetta's bench harness: workloads run through any NFSv3 endpoint with a userspace
//! client (or on a directory), next to baselines measured in the same run, interleaved
//! (the local disk, the NFS layer alone, 1- and 3-replica Codetta clusters, endpoints the
//! user names), so ratios survive a noisy machine. `codetta bench` and `cargo bench` are
//! its entry points.

pub mod data;
pub mod files;
pub mod harness;
pub mod long;
pub mod nfs;
pub mod procstat;
pub mod repair;
pub mod report;
pub mod systems;
pub mod workloads;

pub use harness::{Options, Profile};
pub use report::{Record, Report};
