//! `codetta volume ...`: volume administration with an admin certificate.

use clap::Subcommand;
use codetta_cluster::admin;
use codetta_wire::Request;
use codetta_wire::message::ReplyBody;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume.
    Create { name: String },
    /// List volumes.
    List,
}

pub async fn run(command: VolumeCommand, admin_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = admin::load(&admin_path.unwrap_or_else(admin::default_admin_path))?;
    match command {
        VolumeCommand::Create { name } => {
            match admin::call(&config, &Request::CreateVolume { name }).await? {
                ReplyBody::Volume(v) => {
                    println!("created volume {} (id {}), root {}", v.name, v.id.0, v.root)
                }
                other => anyhow::bail!("unexpected reply {other:?}"),
            }
        }
        VolumeCommand::List => match admin::call(&config, &Request::ListVolumes).await? {
            ReplyBody::Volumes(list) => {
                for v in list {
                    println!("{:>6}  {}", v.id.0, v.name);
                }
            }
            other => anyhow::bail!("unexpected reply {other:?}"),
        },
    }
    Ok(())
}
