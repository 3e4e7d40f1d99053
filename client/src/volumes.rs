//! Every volume this client serves under one export (rule 13): one [`VolumeClient`] per volume
//! (its own modify log, `volume-ID.redb`, and record sequence), opened when a handle or a
//! mount point first leads into it; the export's root follows the catalogue's root volume
//! (`codetta volume set-root`); mount points (`codetta mkmount`, Coda's `cfs mkm`) are
//! symlinks whose target is `#VOLUME.`, shown as the root directory of that volume.

use crate::error::ClientError;
use crate::link::LinkPool;
use crate::log::ModifyLog;
use crate::volume_client::{VolumeClient, VolumeClientOptions, first_answer};
use codetta_wire::message::{ReplyBody, VolumeInfo};
use codetta_wire::{Fid, FsError, Request, Time, VolumeId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long the root volume the catalogue names is trusted before it is asked again.
const ROOT_TTL: Duration = Duration::from_secs(1);
/// Most symlink targets remembered (a symlink's target never changes).
const MAX_TARGETS: usize = 100_000;

/// The target of a mount point of `volume`.
pub fn mount_target(volume: &str) -> String {
    format!("#{volume}.")
}

/// The volume a symlink target names, if it is a mount point.
pub fn mounted_volume(target: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(target).ok()?;
    let name = text.strip_prefix('#')?.strip_suffix('.')?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// The root the export shows: which volume, and since when (a switch must look like a
/// change to clients that cached the old root's listing).
#[derive(Clone, Copy)]
struct RootChoice {
    volume: VolumeId,
    root: Fid,
    switched: Time,
    checked: Instant,
}

/// The volumes this client serves.
pub struct Volumes {
    dir: PathBuf,
    pool: Arc<LinkPool>,
    options: VolumeClientOptions,
    /// The root volume when the catalogue names none (the configuration's).
    default_root: String,
    /// Each volume's VolumeClient, started once (a slow start of one does not hold up the others).
    open: Mutex<HashMap<VolumeId, Arc<tokio::sync::OnceCell<Arc<VolumeClient>>>>>,
    root: Mutex<Option<RootChoice>>,
    /// Symlink targets by fid (mount points are symlinks).
    targets: Mutex<HashMap<Fid, Vec<u8>>>,
    /// Where each mounted volume was entered from: its root's `..`.
    mounted_at: Mutex<HashMap<VolumeId, Fid>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Volumes {
    /// Opens the root volume and every volume whose log still holds records (they are
    /// shipped whether or not anyone looks at that volume again).
    pub async fn start(
        dir: PathBuf,
        pool: Arc<LinkPool>,
        options: VolumeClientOptions,
        default_root: &str,
    ) -> Result<Arc<Volumes>, ClientError> {
        let volumes = Arc::new(Volumes {
            dir,
            pool,
            options,
            default_root: default_root.to_string(),
            open: Mutex::new(HashMap::new()),
            root: Mutex::new(None),
            targets: Mutex::new(HashMap::new()),
            mounted_at: Mutex::new(HashMap::new()),
        });
        volumes.root().await?;
        for id in volumes.logged_volumes()? {
            if let Err(e) = volumes.get(id).await {
                tracing::warn!(
                    volume = id.0,
                    "records logged for a volume that cannot be opened now: {e}"
                );
            }
        }
        Ok(volumes)
    }

    /// Volumes with a log in the data directory.
    fn logged_volumes(&self) -> Result<Vec<VolumeId>, ClientError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| ClientError::Storage(format!("{}: {e}", self.dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("volume-"))
                .and_then(|n| n.strip_suffix(".redb"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            out.push(VolumeId(id));
        }
        Ok(out)
    }

    async fn ask(&self, request: &Request) -> Result<VolumeInfo, ClientError> {
        match first_answer(&self.pool.all(), request).await? {
            (_, ReplyBody::Volume(info)) => Ok(info),
            (_, other) => Err(ClientError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    fn cell(&self, volume: VolumeId) -> Arc<tokio::sync::OnceCell<Arc<VolumeClient>>> {
        lock(&self.open).entry(volume).or_default().clone()
    }

    /// The VolumeClient of `volume`, opened (its log created) on first use.
    pub async fn get(&self, volume: VolumeId) -> Result<Arc<VolumeClient>, ClientError> {
        let cell = self.cell(volume);
        if let Some(v) = cell.get() {
            return Ok(v.clone());
        }
        cell.get_or_try_init(|| async {
            let info = self.ask(&Request::VolumeById { id: volume }).await?;
            self.start_volume_client(info).await
        })
        .await
        .cloned()
    }

    async fn open_info(&self, info: VolumeInfo) -> Result<Arc<VolumeClient>, ClientError> {
        self.cell(info.id)
            .get_or_try_init(|| self.start_volume_client(info))
            .await
            .cloned()
    }

    async fn start_volume_client(
        &self,
        info: VolumeInfo,
    ) -> Result<Arc<VolumeClient>, ClientError> {
        let path = self.dir.join(format!("volume-{}.redb", info.id.0));
        let log = {
            let path = path.clone();
            Arc::new(
                codetta_transport::off_thread(move || ModifyLog::open(&path))
                    .await
                    .map_err(|e| ClientError::Storage(e.to_string()))??,
            )
        };
        let (id, name, members) = (info.id, info.name.clone(), info.vsg.len());
        let volume_client = VolumeClient::start(log, self.pool.clone(), info, self.options).await?;
        tracing::info!(volume = %name, id = id.0, replicas = members, "serving volume");
        Ok(volume_client)
    }

    /// The VolumeClient of the volume named `name`.
    pub async fn by_name(&self, name: &str) -> Result<Arc<VolumeClient>, ClientError> {
        let info = self
            .ask(&Request::VolumeByName {
                name: name.to_string(),
            })
            .await?;
        self.open_info(info).await
    }

    /// The root directory the export shows now: the catalogue's root volume (asked at
    /// most every `ROOT_TTL`), or the configured one while the catalogue names none.
    pub async fn root(&self) -> Result<Fid, ClientError> {
        let cached = *lock(&self.root);
        if let Some(c) = cached
            && c.checked.elapsed() < ROOT_TTL
        {
            return Ok(c.root);
        }
        let info = match self.ask(&Request::RootVolume).await {
            Ok(info) => info,
            Err(ClientError::Fs(FsError::UnknownVolume)) => {
                self.ask(&Request::VolumeByName {
                    name: self.default_root.clone(),
                })
                .await?
            }
            // Servers unreachable: keep showing the root we had, and do not ask again
            // before the TTL is up (every NFS call comes here: none may wait on an outage).
            Err(e) => match cached {
                Some(c) => {
                    if let Some(kept) = lock(&self.root).as_mut() {
                        kept.checked = Instant::now();
                    }
                    return Ok(c.root);
                }
                None => return Err(e),
            },
        };
        let volume = info.id;
        let root = info.root;
        self.open_info(info).await?;
        let mut guard = lock(&self.root);
        let switched = match *guard {
            Some(c) if c.volume == volume => c.switched,
            Some(_) => {
                tracing::info!(volume = volume.0, "the export's root volume changed");
                Time::now()
            }
            None => Time { secs: 0, nanos: 0 },
        };
        *guard = Some(RootChoice {
            volume,
            root,
            switched,
            checked: Instant::now(),
        });
        Ok(root)
    }

    /// When the export's root last switched volumes (the root's mtime is at least this,
    /// so clients drop what they cached of the old root).
    pub fn root_switched(&self) -> Time {
        lock(&self.root).map_or(Time { secs: 0, nanos: 0 }, |c| c.switched)
    }

    /// The symlink `fid`'s target (fetched once: targets never change).
    pub async fn target(
        &self,
        volume_client: &VolumeClient,
        fid: &Fid,
    ) -> Result<Vec<u8>, ClientError> {
        if let Some(t) = lock(&self.targets).get(fid) {
            return Ok(t.clone());
        }
        let target = volume_client.readlink(fid).await?;
        let mut targets = lock(&self.targets);
        if targets.len() >= MAX_TARGETS {
            targets.clear();
        }
        targets.insert(*fid, target.clone());
        Ok(target)
    }

    /// If the symlink `fid` in directory `dir` is a mount point, the root of the volume it
    /// mounts (opened, and remembered as entered from `dir`).
    pub async fn follow(
        &self,
        volume_client: &VolumeClient,
        dir: Fid,
        fid: &Fid,
    ) -> Result<Option<Fid>, ClientError> {
        let target = self.target(volume_client, fid).await?;
        let Some(name) = mounted_volume(&target) else {
            return Ok(None);
        };
        let mounted = match self.by_name(name).await {
            Ok(v) => v,
            // A mount point of a volume that does not exist is shown as the symlink it is.
            Err(ClientError::Fs(FsError::UnknownVolume)) => {
                tracing::debug!(volume = name, "mount point of an unknown volume");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let root = mounted.root();
        if root.volume != dir.volume {
            lock(&self.mounted_at).insert(root.volume, dir);
        }
        Ok(Some(root))
    }

    /// The directory a volume's root was entered from (its `..`), if known.
    pub fn mounted_at(&self, volume: VolumeId) -> Option<Fid> {
        lock(&self.mounted_at).get(&volume).copied()
    }

    /// Every open volume.
    pub async fn all(&self) -> Vec<Arc<VolumeClient>> {
        lock(&self.open)
            .values()
            .filter_map(|cell| cell.get().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_point_targets() {
        assert_eq!(
            mounted_volume(mount_target("proj").as_bytes()),
            Some("proj")
        );
        for plain in ["proj", "#.", "#a/b.", "../x", "#proj", "proj."] {
            assert_eq!(mounted_volume(plain.as_bytes()), None, "{plain}");
        }
        assert_eq!(mounted_volume(&[b'#', 0xff, b'.']), None);
    }
}
