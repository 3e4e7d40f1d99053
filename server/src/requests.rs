//! The one classification of requests: who may make each, where the server runs it, and
//! what a read promises. The request handler asks here instead of keeping its own lists,
//! so adding a request means adding one line to [`classify`] (the match is exhaustive).

use codetta_certs::Role;
use codetta_wire::message::CatalogueCall;
use codetta_wire::{Fid, Request};

/// Where the handler runs a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// On the async worker itself: reads one object's row, cheaper than two thread hand-offs.
    Inline,
    /// On the blocking pool: reads file data, lists a directory, or writes the store.
    Blocking,
    /// On the async side, because it waits on other servers, the catalogue or callbacks.
    Async,
}

/// How the server treats one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// The certificate roles allowed to make it.
    pub callers: &'static [Role],
    /// Where it runs.
    pub path: Path,
    /// The object a read leaves a promise on for the caller's session (rule 15).
    pub promise: Option<Fid>,
    /// Whether it must arrive inside an `InVolume` envelope carrying the caller's
    /// catalogue epoch (rule 13): a batch of updates must.
    pub needs_epoch: bool,
}

const CLIENT: &[Role] = &[Role::Client];
const SERVER: &[Role] = &[Role::Server];
const ADMIN: &[Role] = &[Role::Admin];
const ANYONE: &[Role] = &[Role::Client, Role::Server, Role::Admin];
const CLIENT_OR_SERVER: &[Role] = &[Role::Client, Role::Server];
const ADMIN_OR_CLIENT: &[Role] = &[Role::Admin, Role::Client];
const ADMIN_OR_SERVER: &[Role] = &[Role::Admin, Role::Server];

impl Class {
    const fn new(callers: &'static [Role], path: Path) -> Class {
        Class {
            callers,
            path,
            promise: None,
            needs_epoch: false,
        }
    }

    const fn promising(mut self, fid: Fid) -> Class {
        self.promise = Some(fid);
        self
    }

    const fn with_epoch(mut self) -> Class {
        self.needs_epoch = true;
        self
    }

    /// Whether a peer with `role` may make the request.
    pub fn allows(&self, role: Role) -> bool {
        self.callers.contains(&role)
    }
}

/// How the server treats `request` (an envelope is opened before it is classified: an
/// unopened `InVolume` is allowed to no one).
pub fn classify(request: &Request) -> Class {
    use Path::{Async, Blocking, Inline};
    match request {
        Request::Hello => Class::new(ANYONE, Inline),
        Request::InVolume { .. } => Class::new(&[], Blocking),
        Request::Status => Class::new(ADMIN_OR_CLIENT, Blocking),
        Request::Catalogue(CatalogueCall::Raft(_)) => Class::new(SERVER, Async),
        Request::Catalogue(CatalogueCall::Read) => Class::new(ANYONE, Async),
        Request::Catalogue(_) => Class::new(ADMIN_OR_SERVER, Async),
        // Servers forward an admin call to a member (a drain runs on a remaining replica).
        Request::Volume(_) => Class::new(ADMIN_OR_SERVER, Async),
        Request::Cluster(_) => Class::new(ADMIN, Async),
        // Resolution: what a coordinator asks of the other replicas.
        Request::View { .. } => Class::new(SERVER, Inline),
        Request::Lease { .. }
        | Request::Forget { .. }
        | Request::VolumeDigests { .. }
        | Request::BucketObjects { .. }
        | Request::Release { .. }
        | Request::BlockDigests { .. }
        | Request::BlockMap { .. }
        | Request::MissingChunks { .. }
        | Request::GetChunks { .. }
        | Request::InstallBlocks { .. }
        | Request::InstallMeta { .. }
        | Request::InstallVersion { .. }
        | Request::InstallDelete { .. }
        | Request::Changes { .. } => Class::new(SERVER, Blocking),
        // Resolution peers list directories too.
        Request::ReadDir { dir, .. } => Class::new(CLIENT_OR_SERVER, Blocking).promising(*dir),
        Request::GetAttr { fid } | Request::ReadLink { fid } => {
            Class::new(CLIENT, Inline).promising(*fid)
        }
        Request::Lookup { dir, .. } => Class::new(CLIENT, Inline).promising(*dir),
        Request::Read { fid, .. } => Class::new(CLIENT, Blocking).promising(*fid),
        Request::NewIncarnation
        | Request::ClaimIncarnation { .. }
        | Request::VolumeByName { .. }
        | Request::VolumeById { .. }
        | Request::RootVolume
        | Request::Parent { .. }
        | Request::FsStat { .. } => Class::new(CLIENT, Blocking),
        Request::Resolve { .. } | Request::Promises { .. } => Class::new(CLIENT, Async),
        Request::Ship { .. } => Class::new(CLIENT, Async).with_epoch(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use codetta_wire::VolumeId;

    #[test]
    fn roles_gate_calls() {
        let read = Request::GetAttr {
            fid: Fid::root(VolumeId(1)),
        };
        let admin = Request::Volume(codetta_wire::message::VolumeCall::List);
        assert!(classify(&read).allows(Role::Client));
        assert!(!classify(&read).allows(Role::Server));
        assert!(!classify(&read).allows(Role::Admin));
        assert!(classify(&admin).allows(Role::Admin));
        assert!(!classify(&admin).allows(Role::Client));
        // A server forwards an admin call to a member (a drain runs on one that stays).
        assert!(classify(&admin).allows(Role::Server));
        // An envelope is opened first (one level) and what it carries is checked.
        let wrapped = Request::in_volume(VolumeId(1), 1, &read);
        let (envelope, inner) = wrapped.clone().open_envelope().unwrap();
        assert_eq!((envelope, &inner), (Some((VolumeId(1), 1)), &read));
        assert!(
            !classify(&wrapped).allows(Role::Client),
            "never checked unopened"
        );
        let nested = Request::in_volume(VolumeId(1), 1, &wrapped);
        assert!(nested.open_envelope().is_err(), "envelopes do not nest");
        assert!(classify(&Request::Hello).allows(Role::Server));
    }

    #[test]
    fn reads_promise_what_they_read_and_batches_carry_the_epoch() {
        let dir = Fid::root(VolumeId(3));
        let read = Request::Read {
            fid: dir,
            offset: 0,
            count: 1,
        };
        assert_eq!(classify(&read).promise, Some(dir));
        assert_eq!(classify(&read).path, Path::Blocking);
        let ship = Request::Ship {
            follows: Vec::new(),
            records: Vec::new(),
            log_start: 1,
            cop2: Vec::new(),
        };
        assert!(classify(&ship).needs_epoch);
        assert_eq!(classify(&ship).path, Path::Async);
        assert_eq!(classify(&Request::Status).promise, None);
    }
}
