//! The directory layout of a local cluster: `certs/` (CA and node certificates), `s1.toml`,
//! `client.toml`, `admin.toml`, and the data directories `s1/` and `client/`. Missing pieces
//! are created; existing certificates and data are kept, so a cluster comes back as it was.

use crate::admin::AdminConfig;
use anyhow::Context;
use codetta_certs::Role;
use codetta_client::ClientConfig;
use codetta_server::ServerConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The default cluster directory: `$XDG_DATA_HOME/codetta` or `~/.local/share/codetta`.
pub fn default_dir() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(data).join("codetta");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/codetta")
}

/// A port free for both UDP and TCP on loopback right now (bound, then released), below
/// the kernel's ephemeral range (so that no socket bound to port 0 takes it while its
/// server is down between a kill and a restart), and never handed out before by this
/// process (clusters started side by side in one test process do not share one).
pub fn free_port() -> std::io::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (
        ephemeral_start.saturating_sub(16384).max(1024),
        ephemeral_start,
    );
    // Start at a place that differs between processes, then walk the range.
    let span = u32::from(high.saturating_sub(low)).max(1);
    let seed = std::process::id().wrapping_mul(2_654_435_761) % span;
    for step in 0..span {
        let port = low + ((seed + step) % span) as u16;
        let mut handed = HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed.contains(&port) {
            continue;
        }
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            handed.insert(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free port in {low}..{high}"),
    ))
}

/// One server of a local cluster: its node name, configuration file and QUIC port.
#[derive(Debug, Clone)]
pub struct ServerLayout {
    pub name: String,
    pub toml: PathBuf,
    pub port: u16,
}

impl ServerLayout {
    /// The server's QUIC address on loopback.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Paths and configurations of one cluster directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    /// Servers `s1`, `s2`, ... in order.
    pub servers: Vec<ServerLayout>,
    pub client_toml: PathBuf,
    pub admin: AdminConfig,
    pub nfs_port: u16,
}

fn ensure_cert(certs: &Path, role: Role, name: &str) -> anyhow::Result<()> {
    if !certs.join(format!("{name}.pem")).exists() {
        codetta_certs::issue(certs, role, name, certs)?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// `[[name]]` tables listing `servers` (except `skip`) with their addresses.
fn server_tables(table: &str, servers: &[ServerLayout], skip: Option<&str>) -> String {
    servers
        .iter()
        .filter(|s| Some(s.name.as_str()) != skip)
        .map(|s| {
            format!(
                "\n[[{table}]]\nname = \"{}\"\naddr = \"{}\"\n",
                s.name,
                s.addr()
            )
        })
        .collect()
}

impl Layout {
    /// Creates whatever is missing under `dir` (CA, certificates) and (re)writes the
    /// configurations of one server per port in `server_ports` (named `s1`, `s2`, ...,
    /// each listing the others as peers), the client (listing every server) and the admin
    /// tool (talking to `s1`). `privileged_only`: the client refuses NFS calls from
    /// unprivileged source ports (the daemon's default; tests and the bench, whose NFS
    /// clients are ordinary processes, turn it off).
    pub fn prepare(
        dir: &Path,
        server_ports: &[u16],
        nfs_port: u16,
        privileged_only: bool,
    ) -> anyhow::Result<Layout> {
        anyhow::ensure!(
            !server_ports.is_empty(),
            "a cluster needs at least one server"
        );
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).with_context(|| format!("creating {}", certs.display()))?;
        if !certs.join(codetta_certs::CA_CERT_FILE).exists() {
            codetta_certs::init_ca(&certs)?;
        }
        let servers: Vec<ServerLayout> = server_ports
            .iter()
            .enumerate()
            .map(|(i, port)| ServerLayout {
                name: format!("s{}", i + 1),
                toml: dir.join(format!("s{}.toml", i + 1)),
                port: *port,
            })
            .collect();
        for s in &servers {
            ensure_cert(&certs, Role::Server, &s.name)?;
        }
        ensure_cert(&certs, Role::Client, "c1")?;
        ensure_cert(&certs, Role::Admin, "admin")?;
        let ca = certs.join(codetta_certs::CA_CERT_FILE);
        for s in &servers {
            write_file(
                &s.toml,
                &format!(
                    "name = \"{}\"\nlisten = \"{}\"\ndata_dir = {}\nca = {}\ncert = {}\nkey = {}\n{}",
                    s.name,
                    s.addr(),
                    quoted(&dir.join(&s.name)),
                    quoted(&ca),
                    quoted(&certs.join(format!("{}.pem", s.name))),
                    quoted(&certs.join(format!("{}.key", s.name))),
                    server_tables("peers", &servers, Some(&s.name)),
                ),
            )?;
        }
        let client_toml = dir.join("client.toml");
        write_file(
            &client_toml,
            &format!(
                "name = \"c1\"\ndata_dir = {}\nnfs_listen = \"127.0.0.1:{nfs_port}\"\nrequire_privileged_port = {privileged_only}\nroot_volume = \"root\"\nca = {}\ncert = {}\nkey = {}\n{}",
                quoted(&dir.join("client")),
                quoted(&ca),
                quoted(&certs.join("c1.pem")),
                quoted(&certs.join("c1.key")),
                server_tables("servers", &servers, None),
            ),
        )?;
        let admin = AdminConfig {
            ca,
            cert: certs.join("admin.pem"),
            key: certs.join("admin.key"),
            server_name: servers[0].name.clone(),
            server_addr: servers[0].addr(),
            servers: servers
                .iter()
                .map(|s| codetta_transport::ServerEntry {
                    name: s.name.clone(),
                    addr: s.addr(),
                })
                .collect(),
            client_dir: Some(dir.join("client")),
        };
        write_file(&dir.join("admin.toml"), &toml::to_string(&admin)?)?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            servers,
            client_toml,
            admin,
            nfs_port,
        })
    }

    /// [`Layout::prepare`] for `servers` servers on ports free right now, the client
    /// taking calls from any source port (for tests and the bench).
    pub fn prepare_on_free_ports(dir: &Path, servers: usize) -> anyhow::Result<Layout> {
        let ports = (0..servers)
            .map(|_| free_port())
            .collect::<std::io::Result<Vec<u16>>>()?;
        Self::prepare(dir, &ports, free_port()?, false)
    }

    /// Names of the servers, in order.
    pub fn server_names(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.name.clone()).collect()
    }

    /// The configuration of server `i` (0-based).
    pub fn server_config(&self, i: usize) -> anyhow::Result<ServerConfig> {
        let s = self
            .servers
            .get(i)
            .with_context(|| format!("no server {i} in this cluster"))?;
        ServerConfig::load(&s.toml)
    }

    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        ClientConfig::load(&self.client_toml)
    }

    /// Appends a line (e.g. `capacity_bytes = ...`) to server `i`'s configuration, before
    /// its `[[peers]]` tables.
    pub fn add_server_setting(&self, i: usize, line: &str) -> anyhow::Result<()> {
        let s = self
            .servers
            .get(i)
            .with_context(|| format!("no server {i} in this cluster"))?;
        add_setting(&s.toml, line)
    }

    /// Appends a line (e.g. `cache_mib = ...`) to the client's configuration, before its
    /// `[[servers]]` tables.
    pub fn add_client_setting(&self, line: &str) -> anyhow::Result<()> {
        add_setting(&self.client_toml, line)
    }
}

/// Adds `line` (`key = value`) to the top-level settings of the configuration file at
/// `path`, in place of a setting of the same key.
fn add_setting(path: &Path, line: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let (settings, tables) = text.split_at(text.find("\n[[").unwrap_or(text.len()));
    let key = |l: &str| l.split('=').next().map(|k| k.trim().to_string());
    let kept: String = settings
        .lines()
        .filter(|l| l.trim().is_empty() || key(l) != key(line))
        .map(|l| format!("{l}\n"))
        .collect();
    write_file(path, &format!("{kept}{line}\n{tables}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn prepare_is_repeatable_and_keeps_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let first = Layout::prepare(dir.path(), &[7410, 7411, 7412], 12049, true).unwrap();
        let ca = std::fs::read(&first.admin.ca).unwrap();
        assert!(first.client_config().unwrap().require_privileged_port);
        let again = Layout::prepare(dir.path(), &[7420, 7421, 7422], 12050, false).unwrap();
        assert_eq!(std::fs::read(&again.admin.ca).unwrap(), ca);
        let s2 = again.server_config(1).unwrap();
        assert_eq!(s2.listen.port(), 7421);
        assert!(!again.client_config().unwrap().require_privileged_port);
        let peers: Vec<_> = s2
            .peers
            .iter()
            .map(|p| (p.name.as_str(), p.addr.port()))
            .collect();
        assert_eq!(peers, vec![("s1", 7420), ("s3", 7422)]);
        let client = again.client_config().unwrap();
        assert_eq!(client.nfs_listen.port(), 12050);
        assert_eq!(client.servers.len(), 3);
        again
            .add_server_setting(0, "capacity_bytes = 1000")
            .unwrap();
        let s1 = again.server_config(0).unwrap();
        assert_eq!((s1.capacity_bytes, s1.peers.len()), (Some(1000), 2));
    }
}
