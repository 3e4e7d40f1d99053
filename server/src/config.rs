//! The server's configuration file (TOML).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `codetta server --config FILE`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Node name; must equal the name in this server's certificate.
    pub name: String,
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// The address other servers and clients reach this one at, as the catalogue lists it
    /// (default: `listen`, which must then not be 0.0.0.0 or [::]).
    #[serde(default)]
    pub advertise: Option<SocketAddr>,
    /// Holds `server.redb`.
    pub data_dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Optional cap on stored content bytes: writes beyond it fail with NOSPC.
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
    /// redb page cache in bytes (default 64 MiB).
    #[serde(default)]
    pub cache_bytes: Option<usize>,
    /// The other servers of the cluster (`[[peers]]`: name and address), for creating
    /// replicated volumes and for resolution.
    #[serde(default)]
    pub peers: Vec<codetta_transport::ServerEntry>,
    /// Per-call deadline towards peers in milliseconds (default 2 s).
    #[serde(default = "default_peer_deadline_ms")]
    pub peer_deadline_ms: u64,
    /// How often peers are asked for their changes, in milliseconds (rule 12; default
    /// 1000; 0 turns healing without a client off, for tests of client-driven resolution).
    #[serde(default = "default_heal_interval_ms")]
    pub heal_interval_ms: u64,
    /// Entries each volume's change sequence keeps (default 2^20); a peer that fell
    /// further behind compares the whole volume.
    #[serde(default)]
    pub changes_kept: Option<u64>,
    /// How often old tombstones are collected, in milliseconds (rule 8; default 60 s; 0
    /// turns collection off).
    #[serde(default = "default_collect_interval_ms")]
    pub collect_interval_ms: u64,
    /// A tombstone younger than this stays, in milliseconds (default 10 minutes).
    #[serde(default = "default_tombstone_min_age_ms")]
    pub tombstone_min_age_ms: u64,
    /// True on a server added to a running cluster (`codetta cluster add-server`): it never
    /// starts a catalogue group of its own, it waits to be sent the existing one.
    #[serde(default)]
    pub join: bool,
    /// The GC horizon in milliseconds (default 7 days): an older tombstone goes even while
    /// a replica is unreachable; that replica's live copy comes back as a conflict.
    #[serde(default = "default_tombstone_horizon_ms")]
    pub tombstone_horizon_ms: u64,
}

fn default_collect_interval_ms() -> u64 {
    60_000
}

fn default_tombstone_min_age_ms() -> u64 {
    10 * 60 * 1000
}

fn default_tombstone_horizon_ms() -> u64 {
    7 * 24 * 3600 * 1000
}

fn default_heal_interval_ms() -> u64 {
    1000
}

fn default_peer_deadline_ms() -> u64 {
    2000
}

impl ServerConfig {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))
    }
}
