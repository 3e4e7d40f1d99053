//! The volume's replica group as this client knows it (rule 13): the members it ships to
//! (indexes never change: a member that leaves is retired, one that joins is appended),
//! the catalogue epoch they are from, and the refresh a server's `StaleEpoch` asks for.

use crate::error::ClientError;
use crate::link::{LinkPool, ServerLink};
use codetta_wire::message::{ReplyBody, VolumeInfo};
use codetta_wire::{FsError, Request};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::Notify;

/// One member of the group: its server's link and the wake-up of its shipper.
pub struct Member {
    pub link: Arc<ServerLink>,
    pub wake: Notify,
}

/// The group, its epoch, and how to reach servers.
pub struct Group {
    pool: Arc<LinkPool>,
    members: RwLock<Vec<Arc<Member>>>,
    info: Mutex<VolumeInfo>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

impl Group {
    /// The group of `info`, reached through `pool`.
    pub fn new(pool: Arc<LinkPool>, info: VolumeInfo) -> Result<Group, ClientError> {
        let group = Group {
            pool,
            members: RwLock::new(Vec::new()),
            info: Mutex::new(info.clone()),
            refreshing: tokio::sync::Mutex::new(()),
        };
        for m in &info.vsg {
            group.push(group.link_to(&info, &m.server)?);
        }
        Ok(group)
    }

    /// The link to `server`, from the configuration or the addresses `info` carries.
    pub fn link_to(&self, info: &VolumeInfo, server: &str) -> Result<Arc<ServerLink>, ClientError> {
        let addr = info
            .addrs
            .iter()
            .find(|(name, _)| name == server)
            .map(|(_, addr)| addr.as_str());
        self.pool.get(server, addr)
    }

    /// Appends a member; returns its index.
    pub fn push(&self, link: Arc<ServerLink>) -> usize {
        let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
        members.push(Arc::new(Member {
            link,
            wake: Notify::new(),
        }));
        members.len() - 1
    }

    /// Member `m` (every index handed out stays valid).
    pub fn member(&self, m: usize) -> Option<Arc<Member>> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(m)
            .cloned()
    }

    /// The server name of member `m`, for logs.
    pub fn server_name(&self, m: usize) -> Option<String> {
        self.member(m).map(|x| x.link.server_name().to_string())
    }

    /// Every member ever in the group, by index.
    pub fn all(&self) -> Vec<Arc<Member>> {
        read(&self.members)
    }

    /// The volume as of the newest catalogue epoch this client has.
    pub fn info(&self) -> VolumeInfo {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The catalogue epoch of [`Group::info`].
    pub fn epoch(&self) -> u64 {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).epoch
    }

    pub fn set_info(&self, info: VolumeInfo) {
        *self.info.lock().unwrap_or_else(|p| p.into_inner()) = info;
    }

    /// `request` in the envelope that tells servers which catalogue epoch it was made at.
    pub fn wrap(&self, request: Request) -> Request {
        let info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        Request::in_volume(info.id, info.epoch, &request)
    }

    /// Holds the refresh lock: the caller adopts what [`Group::fetch`] returns before
    /// another refresh starts.
    pub async fn refresh_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.refreshing.lock().await
    }

    /// The volume at catalogue epoch `at_least` or later, asking `first` (the server that
    /// said this client was stale) and then every known server; `None` when this client
    /// already has it.
    pub async fn fetch(
        &self,
        at_least: u64,
        first: Option<&Arc<ServerLink>>,
    ) -> Result<Option<VolumeInfo>, ClientError> {
        let id = {
            let info = self.info.lock().unwrap_or_else(|p| p.into_inner());
            if info.epoch >= at_least {
                return Ok(None);
            }
            info.id
        };
        // By id: a volume removed and made again under the same name is another volume.
        let request = Request::VolumeById { id };
        let mut last = ClientError::Unavailable;
        for link in first.into_iter().cloned().chain(self.pool.all()) {
            match link.call(&request, bytes::Bytes::new()).await {
                Ok((ReplyBody::Volume(info), _)) if info.epoch >= at_least => {
                    return Ok(Some(info));
                }
                Ok(_) => {}
                Err(e @ ClientError::Fs(FsError::UnknownVolume)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}
