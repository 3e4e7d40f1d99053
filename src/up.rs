//! `codetta up`: a whole local cluster from one command. First run creates the CA, the
//! certificates, the configurations and the root volume under DIR; later runs serve the
//! same files under the same handles.

use crate::admin::{self, AdminConfig};
use anyhow::Context;
use codetta_certs::Role;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the cluster keeps everything (default: $XDG_DATA_HOME/codetta or ~/.local/share/codetta).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Port of the NFSv3 endpoint on 127.0.0.1 (NFS and MOUNT).
    #[arg(long, default_value_t = 12049)]
    nfs_port: u16,
    /// Port of the server's QUIC endpoint on 127.0.0.1.
    #[arg(long, default_value_t = 7410)]
    server_port: u16,
}

/// The default cluster directory.
pub fn default_dir() -> PathBuf {
    if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(data).join("codetta");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/codetta")
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn ensure_cert(certs: &Path, role: Role, name: &str) -> anyhow::Result<()> {
    if !certs.join(format!("{name}.pem")).exists() {
        codetta_certs::issue(certs, role, name, certs)?;
    }
    Ok(())
}

fn write_toml(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Creates whatever is missing under `dir` and returns (server, client, admin) configs.
pub fn prepare(
    dir: &Path,
    server_port: u16,
    nfs_port: u16,
) -> anyhow::Result<(PathBuf, PathBuf, AdminConfig)> {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).with_context(|| format!("creating {}", certs.display()))?;
    if !certs.join(codetta_certs::CA_CERT_FILE).exists() {
        codetta_certs::init_ca(&certs)?;
    }
    ensure_cert(&certs, Role::Server, "s1")?;
    ensure_cert(&certs, Role::Client, "c1")?;
    ensure_cert(&certs, Role::Admin, "admin")?;
    let ca = certs.join(codetta_certs::CA_CERT_FILE);
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let server_addr = SocketAddr::from(([127, 0, 0, 1], server_port));
    let server_toml = dir.join("s1.toml");
    write_toml(
        &server_toml,
        &format!(
            "name = \"s1\"\nlisten = \"{server_addr}\"\ndata_dir = {}\nca = {}\ncert = {}\nkey = {}\n",
            q(&dir.join("s1")),
            q(&ca),
            q(&certs.join("s1.pem")),
            q(&certs.join("s1.key")),
        ),
    )?;
    let client_toml = dir.join("client.toml");
    write_toml(
        &client_toml,
        &format!(
            "name = \"c1\"\ndata_dir = {}\nnfs_listen = \"127.0.0.1:{nfs_port}\"\nroot_volume = \"root\"\nca = {}\ncert = {}\nkey = {}\n\n[[servers]]\nname = \"s1\"\naddr = \"{server_addr}\"\n",
            q(&dir.join("client")),
            q(&ca),
            q(&certs.join("c1.pem")),
            q(&certs.join("c1.key")),
        ),
    )?;
    let admin = AdminConfig {
        ca,
        cert: certs.join("admin.pem"),
        key: certs.join("admin.key"),
        server_name: "s1".into(),
        server_addr,
    };
    write_toml(&dir.join("admin.toml"), &toml::to_string(&admin)?)?;
    Ok((server_toml, client_toml, admin))
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(default_dir);
    let (server_toml, client_toml, admin_config) = prepare(&dir, args.server_port, args.nfs_port)?;
    let server_config = codetta_server::ServerConfig::load(&server_toml)?;
    let server = codetta_server::ServerDaemon::start(&server_config).await?;
    let root = admin::ensure_volume(&admin_config, "root").await?;
    tracing::info!(volume = %root.name, id = root.id.0, "root volume ready");
    let client_config = codetta_client::ClientConfig::load(&client_toml)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let client = codetta_client::ClientDaemon::start(&client_config, stop_rx).await?;
    let port = client.nfs_addr.port();
    println!(
        "Codetta is up: 1 server, client daemon serving NFSv3 on {}",
        client.nfs_addr
    );
    println!("cluster directory: {}", dir.display());
    println!(
        "Linux: sudo mkdir -p /mnt/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolock,hard 127.0.0.1:/ /mnt/codetta"
    );
    println!(
        "macOS: mkdir -p ~/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolocks,locallocks 127.0.0.1:/ ~/codetta"
    );
    println!("Stop with Ctrl-C (unmount first).");
    wait_for_signal().await?;
    println!("stopping");
    let _ = stop_tx.send(true);
    client.stop().await;
    server.stop().await;
    Ok(())
}
