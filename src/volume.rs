//! `codetta volume ...`: volume administration with an admin certificate.

use clap::Subcommand;
use codetta_cluster::admin;
use codetta_wire::Request;
use codetta_wire::message::ReplyBody;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum VolumeCommand {
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
}

pub async fn run(command: VolumeCommand, admin_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = admin::load(&admin_path.unwrap_or_else(admin::default_admin_path))?;
    match command {
        VolumeCommand::Create { name, replicas } => {
            match admin::call(&config, &Request::CreateVolume { name, replicas }).await? {
                ReplyBody::Volume(v) => {
                    let servers: Vec<&str> = v.vsg.iter().map(|m| m.server.as_str()).collect();
                    println!(
                        "created volume {} (id {}), root {}, replicas on {}",
                        v.name,
                        v.id.0,
                        v.root,
                        servers.join(", ")
                    )
                }
                other => anyhow::bail!("unexpected reply {other:?}"),
            }
        }
        VolumeCommand::List => match admin::call(&config, &Request::ListVolumes).await? {
            ReplyBody::Volumes(list) => {
                for v in list {
                    let servers: Vec<&str> = v.vsg.iter().map(|m| m.server.as_str()).collect();
                    println!("{:>10}  {:<20} {}", v.id.0, v.name, servers.join(","));
                }
            }
            other => anyhow::bail!("unexpected reply {other:?}"),
        },
    }
    Ok(())
}
