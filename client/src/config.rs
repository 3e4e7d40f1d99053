//! The client daemon's configuration file (TOML).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use codetta_transport::ServerEntry;

/// `codetta client --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// This client's node name (its certificate name).
    pub name: String,
    /// Holds the modify logs, one per volume (`volume-ID.redb`), and `status.json`.
    pub data_dir: PathBuf,
    /// Where the NFSv3 endpoint listens (NFS and MOUNT on one port).
    #[serde(default = "default_nfs_listen")]
    pub nfs_listen: SocketAddr,
    /// The volume served at the export's `/`.
    #[serde(default = "default_root_volume")]
    pub root_volume: String,
    /// Refuse NFS calls from unprivileged source ports (the default). The kernel's NFS
    /// client sends from a port below 1024, which only root can bind; any local user can
    /// send from any other port and claim any uid in its AUTH_SYS credential, so turning
    /// this off lets every local user act as every other (and as root) in the mount. Off
    /// only for clients that cannot use privileged ports: macOS's (`resvport` off),
    /// libnfs, tests.
    #[serde(default = "default_require_privileged_port")]
    pub require_privileged_port: bool,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub servers: Vec<ServerEntry>,
    /// Per-call deadline in milliseconds (rule 1: default 2 s).
    #[serde(default = "default_call_deadline_ms")]
    pub call_deadline_ms: u64,
    /// How long calls answer JUKEBOX while no server is reachable before they fail with IO.
    #[serde(default = "default_jukebox_secs")]
    pub jukebox_secs: u64,
    /// Bound on the modify log's unshipped bytes; writers wait, then get JUKEBOX.
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// Servers that must hold an update before a stable call is answered (rule 1; default
    /// 1: availability first, every reachable replica still gets it).
    #[serde(default = "default_min_copies")]
    pub min_copies: usize,
    /// File data the client cache may hold, in MiB (0: no data is cached; states and
    /// names still are).
    #[serde(default = "default_cache_mib")]
    pub cache_mib: u64,
    /// Answer WRITE and COMMIT with the same verifier at every start (off by default). For
    /// tests that show what the per-start verifier prevents: UNSTABLE writes are held in
    /// memory until COMMIT, so with a fixed verifier a daemon that dies before the COMMIT
    /// loses them and the kernel is not told to send them again.
    #[serde(default)]
    pub fixed_write_verifier: bool,
    /// Fault injection for tests: the modify log's appender waits this many milliseconds
    /// before each append (default 0), so records stay on their way into the log longer.
    #[serde(default)]
    pub test_append_delay_ms: u64,
}

/// File data a client caches unless configured otherwise, in MiB.
pub const DEFAULT_CACHE_MIB: u64 = 256;

fn default_cache_mib() -> u64 {
    DEFAULT_CACHE_MIB
}

fn default_require_privileged_port() -> bool {
    true
}

fn default_min_copies() -> usize {
    1
}

fn default_nfs_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2049))
}
fn default_root_volume() -> String {
    "root".to_string()
}
fn default_call_deadline_ms() -> u64 {
    2000
}
fn default_jukebox_secs() -> u64 {
    30
}
fn default_log_max_bytes() -> u64 {
    64 << 20
}

impl ClientConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<ClientConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let config: ClientConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
        if config.servers.is_empty() {
            anyhow::bail!("{}: no [[servers]] configured", path.display());
        }
        Ok(config)
    }

    pub fn call_deadline(&self) -> Duration {
        Duration::from_millis(self.call_deadline_ms)
    }

    pub fn jukebox_window(&self) -> Duration {
        Duration::from_secs(self.jukebox_secs)
    }
}
