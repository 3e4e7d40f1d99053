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

/// A port free for both UDP and TCP on loopback right now (bound, then released).
pub fn free_port() -> std::io::Result<u16> {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// Paths and configurations of one cluster directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub server_toml: PathBuf,
    pub client_toml: PathBuf,
    pub admin: AdminConfig,
    pub server_port: u16,
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

impl Layout {
    /// Creates whatever is missing under `dir` (CA, certificates) and (re)writes the
    /// configurations for the given ports.
    pub fn prepare(dir: &Path, server_port: u16, nfs_port: u16) -> anyhow::Result<Layout> {
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).with_context(|| format!("creating {}", certs.display()))?;
        if !certs.join(codetta_certs::CA_CERT_FILE).exists() {
            codetta_certs::init_ca(&certs)?;
        }
        ensure_cert(&certs, Role::Server, "s1")?;
        ensure_cert(&certs, Role::Client, "c1")?;
        ensure_cert(&certs, Role::Admin, "admin")?;
        let ca = certs.join(codetta_certs::CA_CERT_FILE);
        let server_addr = SocketAddr::from(([127, 0, 0, 1], server_port));
        let server_toml = dir.join("s1.toml");
        write_file(
            &server_toml,
            &format!(
                "name = \"s1\"\nlisten = \"{server_addr}\"\ndata_dir = {}\nca = {}\ncert = {}\nkey = {}\n",
                quoted(&dir.join("s1")),
                quoted(&ca),
                quoted(&certs.join("s1.pem")),
                quoted(&certs.join("s1.key")),
            ),
        )?;
        let client_toml = dir.join("client.toml");
        write_file(
            &client_toml,
            &format!(
                "name = \"c1\"\ndata_dir = {}\nnfs_listen = \"127.0.0.1:{nfs_port}\"\nroot_volume = \"root\"\nca = {}\ncert = {}\nkey = {}\n\n[[servers]]\nname = \"s1\"\naddr = \"{server_addr}\"\n",
                quoted(&dir.join("client")),
                quoted(&ca),
                quoted(&certs.join("c1.pem")),
                quoted(&certs.join("c1.key")),
            ),
        )?;
        let admin = AdminConfig {
            ca,
            cert: certs.join("admin.pem"),
            key: certs.join("admin.key"),
            server_name: "s1".into(),
            server_addr,
        };
        write_file(&dir.join("admin.toml"), &toml::to_string(&admin)?)?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            server_toml,
            client_toml,
            admin,
            server_port,
            nfs_port,
        })
    }

    /// [`Layout::prepare`] on ports free right now.
    pub fn prepare_on_free_ports(dir: &Path) -> anyhow::Result<Layout> {
        Self::prepare(dir, free_port()?, free_port()?)
    }

    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        ServerConfig::load(&self.server_toml)
    }

    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        ClientConfig::load(&self.client_toml)
    }

    /// Appends a line to the server's configuration (e.g. `capacity_bytes = ...`).
    pub fn add_server_setting(&self, line: &str) -> anyhow::Result<()> {
        let mut text = std::fs::read_to_string(&self.server_toml)?;
        text.push_str(line);
        text.push('\n');
        write_file(&self.server_toml, &text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn prepare_is_repeatable_and_keeps_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let first = Layout::prepare(dir.path(), 7410, 12049).unwrap();
        let ca = std::fs::read(&first.admin.ca).unwrap();
        let again = Layout::prepare(dir.path(), 7411, 12050).unwrap();
        assert_eq!(std::fs::read(&again.admin.ca).unwrap(), ca);
        assert_eq!(again.server_config().unwrap().listen.port(), 7411);
        assert_eq!(again.client_config().unwrap().nfs_listen.port(), 12050);
    }
}
