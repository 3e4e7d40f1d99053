//! `codetta mkmount PATH VOLUME` (Coda's `cfs mkm`): makes a mount point, a symlink whose
//! target is `#VOLUME.`, which every client daemon shows as the root directory of VOLUME.
//! The symlink is ordinary replicated state of the volume it lives in.

use codetta_bench::nfs::Nfs;
use codetta_cluster::admin;
use codetta_wire::Request;
use codetta_wire::message::{ReplyBody, VolumeCall};
use std::path::{Path, PathBuf};

/// Makes the mount point `path` for `volume`: through the client daemon's NFS endpoint on
/// 127.0.0.1:`nfs_port` when given (`path` from the export's root), else at `path` on
/// this machine's mounted Codetta file system.
pub(crate) async fn run(
    path: &str,
    volume: &str,
    nfs_port: Option<u16>,
    admin_path: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = admin::load(&admin_path.unwrap_or_else(admin::default_admin_path))?;
    let info = match admin::call(
        &config,
        &Request::Volume(VolumeCall::Info {
            name: volume.to_string(),
        }),
    )
    .await?
    {
        ReplyBody::Volume(v) => v,
        other => anyhow::bail!("unexpected reply {other:?}"),
    };
    let target = codetta_client::volumes::mount_target(&info.name);
    match nfs_port {
        Some(port) => {
            let mut nfs = Nfs::connect_as_root(port).await?;
            let (dir, last) = nfs.parent_of(path).await?;
            nfs.symlink(&dir, &last, &target)
                .await
                .map_err(|e| anyhow::anyhow!("making {path}: {e:?}"))?;
        }
        None => std::os::unix::fs::symlink(&target, Path::new(path))
            .map_err(|e| anyhow::anyhow!("making {path}: {e}"))?,
    }
    println!("{path} now mounts volume {} (id {})", info.name, info.id.0);
    Ok(())
}
