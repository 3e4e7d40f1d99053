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
    /// (default: `listen`, which must then not be 0.0.0.0 or `[::]`).
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
    /// While clients update this server, healing it coordinates pauses after each piece of
    /// file data for this many times the piece's time (default 0.25: healing takes at most
    /// 80% of the time; 0 never pauses; at most 9). Resolution a client asked for is not
    /// paced.
    #[serde(default = "default_heal_pause")]
    pub heal_pause: f64,
    /// Fault injection for tests, never for production: every resolution this server
    /// coordinates waits this many milliseconds before each piece of file data it installs
    /// (default 0), holding the replica it fills between its attributes and its data for
    /// longer.
    #[serde(default)]
    pub test_install_delay_ms: u64,
}

fn default_heal_pause() -> f64 {
    crate::pacing::DEFAULT_PAUSE
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
        let config: ServerConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Refuses values out of range.
    pub fn check(&self) -> anyhow::Result<()> {
        let pause = self.heal_pause;
        anyhow::ensure!(
            pause.is_finite() && (0.0..=crate::pacing::MAX_PAUSE).contains(&pause),
            "heal_pause must be within 0..={} (got {pause})",
            crate::pacing::MAX_PAUSE
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINIMAL: &str = r#"
        name = "s1"
        listen = "127.0.0.1:7001"
        data_dir = "/var/lib/codetta"
        ca = "ca.pem"
        cert = "s1.pem"
        key = "s1.key"
    "#;

    #[test]
    fn heal_pause_defaults_and_is_bounded() {
        let config: ServerConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(config.heal_pause, crate::pacing::DEFAULT_PAUSE);
        config.check().unwrap();
        for (pause, ok) in [("0", true), ("9", true), ("9.5", false), ("-0.1", false)] {
            let text = format!("{MINIMAL}\nheal_pause = {pause}\n");
            let config: ServerConfig = toml::from_str(&text).unwrap();
            assert_eq!(config.check().is_ok(), ok, "heal_pause = {pause}");
        }
    }
}
