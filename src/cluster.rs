//! `codetta cluster ...`: servers joining and leaving the cluster (Coda's vice-setup), and
//! revoking a lost machine's certificate. Changes commit in the catalogue on a majority.

use clap::Subcommand;
use codetta_cluster::admin;
use codetta_wire::Request;
use codetta_wire::message::{ClusterCall, ReplyBody};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// Add server NAME at ADDR (IP:PORT) to the running cluster. First issue its
    /// certificate (`codetta certs issue --role server --name NAME`), start it with
    /// `join = true` and the existing servers as its `[[peers]]`; it votes in the catalogue
    /// once it has caught up, and volumes may then place replicas on it.
    AddServer { name: String, addr: String },
    /// Remove server NAME (refused while it holds replicas: `volume remove-replica` first).
    RemoveServer { name: String },
    /// The servers (and which vote in the catalogue), the root volume, revoked certificates.
    List,
    /// Refuse a certificate from now on (a lost client's): give its file or its fingerprint.
    Revoke {
        /// The certificate's fingerprint (`codetta certs fingerprint FILE`).
        #[arg(long, conflicts_with = "cert")]
        fingerprint: Option<String>,
        /// The certificate file (PEM).
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Why (kept in the catalogue).
        #[arg(long, default_value = "revoked")]
        note: String,
    },
}

pub(crate) async fn run(
    command: ClusterCommand,
    admin_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = admin::load(&admin_path.unwrap_or_else(admin::default_admin_path))?;
    let call = match command {
        ClusterCommand::AddServer { name, addr } => ClusterCall::AddServer { name, addr },
        ClusterCommand::RemoveServer { name } => ClusterCall::RemoveServer { name },
        ClusterCommand::List => ClusterCall::List,
        ClusterCommand::Revoke {
            fingerprint,
            cert,
            note,
        } => {
            let fingerprint = match (fingerprint, cert) {
                (Some(f), _) => f,
                (None, Some(path)) => codetta_certs::certificate_fingerprint(&path)?,
                (None, None) => anyhow::bail!("give --fingerprint or --cert"),
            };
            ClusterCall::Revoke { fingerprint, note }
        }
    };
    let what = format!("{call:?}");
    match admin::call_within(&config, &Request::Cluster(call), Duration::from_secs(120)).await? {
        ReplyBody::Done => println!("done: {what}"),
        ReplyBody::Cluster(info) => {
            println!("catalogue epoch {}", info.epoch);
            for (name, addr, voter) in &info.servers {
                println!(
                    "server {name:<12} {addr:<24} {}",
                    if *voter { "voter" } else { "not voting yet" }
                );
            }
            println!(
                "root volume: {}",
                info.root_volume.as_deref().unwrap_or("(none set)")
            );
            for (fingerprint, note) in &info.revoked {
                println!("revoked {fingerprint} ({note})");
            }
        }
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
    Ok(())
}
