//! `codetta volume ...`: volume administration with an admin certificate. Every change
//! goes through the catalogue (committed on a majority of servers); any server answers.

use clap::Subcommand;
use codetta_cluster::admin;
use codetta_wire::Request;
use codetta_wire::message::{ReplyBody, VolumeCall, VolumeInfo};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand)]
pub(crate) enum VolumeCommand {
    /// Create a volume with a replica on each of the named servers (Coda's createvol_rep).
    Create {
        name: String,
        /// Servers to hold replicas, comma-separated (default: the server the admin
        /// configuration names).
        #[arg(long, value_delimiter = ',')]
        replicas: Vec<String>,
    },
    /// List volumes.
    List,
    /// Show one volume: id, root, epoch, replicas and their servers.
    Info { name: String },
    /// Remove a volume from the catalogue; every replica of it is deleted.
    Remove { name: String },
    /// Add a replica on SERVER to a volume in use: it joins the group at once and is
    /// filled in the background.
    AddReplica { name: String, server: String },
    /// Remove SERVER's replica. It is drained first; the removal is refused while the
    /// replica holds the only copy of an update, unless --force.
    RemoveReplica {
        name: String,
        server: String,
        /// Remove it even if that loses what only it holds (a server that is gone for good).
        #[arg(long)]
        force: bool,
    },
    /// Make NAME the volume the export's root shows (Coda's ROOTVOLUME).
    SetRoot { name: String },
}

fn describe(v: &VolumeInfo) -> String {
    let servers: Vec<String> = v
        .vsg
        .iter()
        .map(|m| format!("{} (replica {:016x})", m.server, m.replica.0))
        .collect();
    format!(
        "volume {} (id {}), root {}, epoch {}, replicas: {}",
        v.name,
        v.id.0,
        v.root,
        v.epoch,
        servers.join(", ")
    )
}

pub(crate) async fn run(command: VolumeCommand, admin_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = admin::load(&admin_path.unwrap_or_else(admin::default_admin_path))?;
    let (call, deadline) = match command {
        VolumeCommand::Create { name, replicas } => (
            VolumeCall::Create { name, replicas },
            Duration::from_secs(60),
        ),
        VolumeCommand::List => (VolumeCall::List, Duration::from_secs(60)),
        VolumeCommand::Info { name } => (VolumeCall::Info { name }, Duration::from_secs(60)),
        VolumeCommand::Remove { name } => (VolumeCall::Remove { name }, Duration::from_secs(60)),
        VolumeCommand::AddReplica { name, server } => (
            VolumeCall::AddReplica { name, server },
            Duration::from_secs(60),
        ),
        VolumeCommand::RemoveReplica {
            name,
            server,
            force,
        } => (
            VolumeCall::RemoveReplica {
                name,
                server,
                force,
            },
            // The drain may take minutes on a large volume.
            Duration::from_secs(600),
        ),
        VolumeCommand::SetRoot { name } => (VolumeCall::SetRoot { name }, Duration::from_secs(60)),
    };
    let what = format!("{call:?}");
    match admin::call_within(&config, &Request::Volume(call), deadline).await? {
        ReplyBody::Volume(v) => println!("{}", describe(&v)),
        ReplyBody::Volumes(list) => {
            for v in list {
                let servers: Vec<&str> = v.vsg.iter().map(|m| m.server.as_str()).collect();
                println!(
                    "{:>10}  {:<20} epoch {:<6} {}",
                    v.id.0,
                    v.name,
                    v.epoch,
                    servers.join(",")
                );
            }
        }
        ReplyBody::Done => println!("done: {what}"),
        other => anyhow::bail!("unexpected reply {other:?}"),
    }
    Ok(())
}
