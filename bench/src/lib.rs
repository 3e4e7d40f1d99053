//! Codetta's bench harness: workloads run through any NFSv3 endpoint with a userspace
//! client (or on a directory), next to baselines measured in the same run, interleaved
//! (the local disk, the NFS layer alone, 1- and 3-replica Codetta clusters, endpoints the
//! user names), so ratios survive a noisy machine. `codetta bench` and `cargo bench` are
//! its entry points.

/// Retries an NFS call answering JUKEBOX ("try again later": the client daemon noticing a
/// server come or go, or writes still on their way at a COMMIT) every 50 ms for up to 60 s,
/// as the kernel's client does; evaluates to the call's last result. The bench and the
/// end-to-end tests both use it.
#[macro_export]
macro_rules! patiently {
    ($e:expr) => {{
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match $e {
                Err(nfs3_client::nfs3_types::nfs3::nfsstat3::NFS3ERR_JUKEBOX)
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                other => break other,
            }
        }
    }};
}

pub mod data;
pub mod files;
pub mod front_alone;
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
