//! Requests and replies. Each travels as one [`crate::Frame`] on its own QUIC stream.

use crate::attrs::Attrs;
use crate::error::FsError;
use crate::history::History;
use crate::ids::{Fid, Incarnation, ReplicaId, VolumeId};
use crate::name::Name;
use crate::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use crate::tag::ContentTag;
use crate::update::{Cop2, RecordOutcome, UpdateRecord};
use crate::version::VersionVector;
use serde::{Deserialize, Serialize};

/// How long a server holds a `Promises` call open when it has no break to deliver.
pub const CALLBACK_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(300);
/// How long after *sending* a `Promises` call that was answered a client may trust its
/// promises on that server.
pub const CALLBACK_LEASE: std::time::Duration = std::time::Duration::from_millis(1000);
/// How long after a client's last `Promises` call *arrived* a server may void its session
/// (when it owes an acknowledgement): more than [`CALLBACK_LEASE`], so a client whose
/// channel went quiet has stopped answering from its cache by then. A restarted server
/// answers no change for this long, and a closed connection's promises stay this long.
pub const CALLBACK_VOID_AFTER: std::time::Duration = std::time::Duration::from_millis(1200);

/// Most post-batch object states one `Shipped` answer carries.
pub const MAX_SHIPPED_STATES: usize = 32;

/// A call from a client daemon (or an admin tool) to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness and identity.
    Hello,
    /// Allocates a fresh client incarnation (durably; never reused by this server).
    NewIncarnation,
    /// Records that a client took `incarnation` (from another server), so this server never
    /// hands it out; `Exists` if it already has.
    ClaimIncarnation {
        incarnation: Incarnation,
    },
    /// Finds a volume by name (in the catalogue).
    VolumeByName {
        name: String,
    },
    /// Finds a volume by id (a handle into a volume the client has not opened yet).
    VolumeById {
        id: VolumeId,
    },
    /// The volume the export's root shows (`UnknownVolume` while none is set).
    RootVolume,
    /// A volume administration call (admin role): answered from the catalogue, changes
    /// committed through it (rule 13).
    Volume(VolumeCall),
    /// A cluster administration call (admin role).
    Cluster(ClusterCall),
    /// A client's call about `volume`, made with the catalogue epoch of the volume the
    /// client holds: a server whose catalogue has moved the volume past `epoch` (its group
    /// changed) refuses it with `StaleEpoch`, and the client refreshes (rule 13). `call` is
    /// the postcard encoding of the request inside (never another envelope): kept as bytes
    /// so that decoding never recurses on what a peer sends.
    InVolume {
        volume: VolumeId,
        epoch: u64,
        call: Vec<u8>,
    },
    GetAttr {
        fid: Fid,
    },
    Lookup {
        dir: Fid,
        name: Name,
    },
    /// The directory containing `dir` (a root is its own parent): LOOKUP of `..`.
    Parent {
        dir: Fid,
    },
    /// Entries after `cookie` (0 = from the start), at most `max_entries` of them.
    ReadDir {
        dir: Fid,
        cookie: u64,
        max_entries: u32,
        with_attrs: bool,
    },
    /// Up to `count` bytes at `offset`; the bytes come back in the data section.
    Read {
        fid: Fid,
        offset: u64,
        count: u32,
    },
    ReadLink {
        fid: Fid,
    },
    /// A sequenced batch from the client's modify log; write data in the data section.
    ///
    /// `log_start` is the lowest sequence number the client still holds: a server whose
    /// last applied record is further back missed the records in between (they were applied
    /// elsewhere and trimmed) and continues from there, knowing it is stale. `cop2` tells
    /// which replicas applied earlier records (the second phase, rule 2).
    Ship {
        records: Vec<UpdateRecord>,
        log_start: u64,
        cop2: Vec<Cop2>,
    },
    FsStat {
        volume: VolumeId,
    },
    /// Asks this server to resolve the objects: compare their replicas and bring every
    /// reachable one to the same state (client role; rule 6).
    Resolve {
        fids: Vec<Fid>,
    },
    /// Server to server, during resolution: this replica's view of an object.
    View {
        fid: Fid,
    },
    /// Digests of a file's block map in groups of [`crate::replica::BLOCK_GROUP`] blocks.
    BlockDigests {
        fid: Fid,
    },
    /// The block map of a file from block `first`, at most `count` entries.
    BlockMap {
        fid: Fid,
        first: u64,
        count: u32,
    },
    /// Which of these chunks this server lacks.
    MissingChunks {
        hashes: Vec<[u8; 32]>,
    },
    /// Chunk contents, concatenated in the data section.
    GetChunks {
        hashes: Vec<[u8; 32]>,
    },
    /// Sets blocks of a (live) file if its version is still `expect`: `None` removes one;
    /// the data section holds the chunks listed in `chunks` (hash, length), which the
    /// receiver lacked.
    InstallBlocks {
        fid: Fid,
        expect: VersionVector,
        blocks: Vec<(u64, Option<BlockEntry>)>,
        chunks: Vec<([u8; 32], u32)>,
    },
    /// Makes the object live with these attributes and placement (created if absent or
    /// deleted, with an empty version), if its version is still `expect`.
    InstallMeta {
        fid: Fid,
        expect: VersionVector,
        meta: ObjectMeta,
    },
    /// Sets the object's version and history if its version is still `expect`.
    InstallVersion {
        fid: Fid,
        expect: VersionVector,
        version: VersionVector,
        history: History,
    },
    /// Deletes the object (leaving a tombstone with this version) if its version is still
    /// `expect`.
    InstallDelete {
        fid: Fid,
        expect: VersionVector,
        version: VersionVector,
        history: History,
        placement: Placement,
    },
    /// The digest of each of the volume's [`crate::replica::DIGEST_BUCKETS`] buckets of
    /// objects (live and deleted): the upper level of the tree two replicas compare after a long absence
    /// (rule 12).
    VolumeDigests {
        volume: VolumeId,
    },
    /// The objects of the volume in the listed buckets, in vnode order after vnode
    /// `after`, at most `max` of them, each with its state digest.
    BucketObjects {
        volume: VolumeId,
        buckets: Vec<u16>,
        after: u64,
        max: u32,
    },
    /// Collects the tombstone of `fid` (rule 8), in two rounds over every replica: first
    /// (`drop` false) the replica refuses creates of it from then on, then (`drop` true) it
    /// drops the tombstone, keeping a marker when `mark` (collected past the GC horizon
    /// without some replica). `Exists` when the object is live here.
    Forget {
        fid: Fid,
        drop: bool,
        mark: bool,
    },
    /// The catalogue (rule 13): a Raft message between servers (server role), or a read or
    /// proposed change (admin or server role). Bodies are postcard encodings of the
    /// server's catalogue types.
    Catalogue(CatalogueCall),
    /// Leases the objects to the coordinator `holder` for `ttl_ms` (all or none; `Leased`
    /// when another holder has one). Asking again extends the lease.
    Lease {
        fids: Vec<Fid>,
        holder: u64,
        ttl_ms: u32,
    },
    /// Ends `holder`'s leases on the objects.
    Release {
        fids: Vec<Fid>,
        holder: u64,
    },
    /// What this server holds and has done: volumes, conflicts, resolution totals (admin
    /// or client role).
    Status,
    /// This server's changed objects in `volume` after its change number `since`, only
    /// those changed at least `older_than_ms` ago.
    Changes {
        volume: VolumeId,
        since: u64,
        max: u32,
        older_than_ms: u32,
    },
    /// The callback channel of a client's `session` for `volume` on this connection (rule
    /// 15): acknowledges the breaks up to `ack` and waits (at most a heartbeat) for new
    /// ones. While a session lives, this connection's reads in `volume` leave promises.
    /// `acked_session` is the session number the acknowledgement is for (from the last
    /// answer), so a late call cannot acknowledge a newer session's breaks.
    Promises {
        volume: VolumeId,
        session: u64,
        ack: u64,
        acked_session: u64,
    },
}

/// Cluster administration (`codetta cluster ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterCall {
    /// A server joins: it votes in the catalogue and may hold replicas.
    AddServer {
        name: String,
        addr: String,
    },
    /// A server leaves (refused while it holds replicas).
    RemoveServer {
        name: String,
    },
    List,
    /// Servers refuse the certificate with this fingerprint from now on.
    Revoke {
        fingerprint: String,
        note: String,
    },
}

/// The cluster as `codetta cluster list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub epoch: u64,
    /// (name, address, votes in the catalogue).
    pub servers: Vec<(String, String, bool)>,
    pub root_volume: Option<String>,
    /// (fingerprint, note).
    pub revoked: Vec<(String, String)>,
}

/// Volume administration (`codetta volume ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VolumeCall {
    /// A new volume with a replica on each named server (the called server alone when
    /// `replicas` is empty).
    Create {
        name: String,
        replicas: Vec<String>,
    },
    /// Every volume in the catalogue.
    List,
    Info {
        name: String,
    },
    /// Removes the volume from the catalogue; its replicas are deleted.
    Remove {
        name: String,
    },
    /// Adds a replica on `server`: it joins the group, then is filled.
    AddReplica {
        name: String,
        server: String,
    },
    /// Removes `server`'s replica once nothing would be lost with it (drained first);
    /// `force` removes it even then.
    RemoveReplica {
        name: String,
        server: String,
        force: bool,
    },
    /// Makes the volume the one the export's root shows.
    SetRoot {
        name: String,
    },
}

impl Request {
    /// The object a read-only call reads (whose replicas a client compares before it, rule
    /// 4); `None` for every other call.
    pub fn read_target(&self) -> Option<Fid> {
        match self {
            Request::GetAttr { fid } | Request::Read { fid, .. } | Request::ReadLink { fid } => {
                Some(*fid)
            }
            Request::Lookup { dir, .. }
            | Request::Parent { dir }
            | Request::ReadDir { dir, .. } => Some(*dir),
            _ => None,
        }
    }

    /// `call` in the envelope of `volume` at catalogue `epoch`.
    pub fn in_volume(volume: VolumeId, epoch: u64, call: &Request) -> Request {
        Request::InVolume {
            volume,
            epoch,
            // Encoding a request into a Vec cannot fail (no maps with non-string keys).
            call: postcard::to_allocvec(call).unwrap_or_default(),
        }
    }

    /// The request inside an envelope, decoded (one level: an envelope inside is refused),
    /// with the envelope's volume and epoch; any other request as it is.
    pub fn open_envelope(self) -> Result<(Option<(VolumeId, u64)>, Request), String> {
        match self {
            Request::InVolume {
                volume,
                epoch,
                call,
            } => match postcard::from_bytes::<Request>(&call) {
                Ok(Request::InVolume { .. }) => Err("an envelope inside an envelope".into()),
                Ok(inner) => Ok((Some((volume, epoch)), inner)),
                Err(e) => Err(format!("the request in the envelope: {e}")),
            },
            other => Ok((None, other)),
        }
    }

    /// Bytes the data section of this request must hold (`None`: malformed).
    pub fn data_len(&self) -> Option<usize> {
        match self {
            Request::InVolume { call, .. } => match postcard::from_bytes::<Request>(call) {
                Ok(Request::InVolume { .. }) | Err(_) => None,
                Ok(inner) => inner.data_len(),
            },
            Request::Ship { records, .. } => records
                .iter()
                .try_fold(0usize, |sum, r| sum.checked_add(r.op.data_len())),
            Request::InstallBlocks { chunks, .. } => chunks
                .iter()
                .try_fold(0usize, |sum, (_, len)| sum.checked_add(*len as usize)),
            _ => Some(0),
        }
    }
}

/// A call to the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogueCall {
    /// An encoded Raft message; the reply is the encoded Raft answer.
    Raft(Vec<u8>),
    /// The catalogue as of now (linearizable, through the leader).
    Read,
    /// An encoded change to commit.
    Propose(Vec<u8>),
    /// An encoded change of the Raft group's members (a server joining or leaving).
    Members(Vec<u8>),
}

/// One server's account of itself, for `codetta status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub server: String,
    pub volumes: Vec<VolumeStatus>,
    /// What resolution coordinated by this server has done since it started.
    pub resolution: ResolveSummary,
    pub space: SpaceInfo,
}

/// One volume replica on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeStatus {
    pub info: VolumeInfo,
    /// This server's replica.
    pub replica: crate::ids::ReplicaId,
    /// Objects under conflict names, waiting for `codetta repair`.
    pub conflicts: Vec<ConflictEntry>,
    /// The last number of this replica's change sequence.
    pub changes: u64,
    /// How far this server has settled each peer's change sequence: (server, cursor).
    pub cursors: Vec<(String, u64)>,
}

/// An object resolution placed under a conflict name (a copy of a concurrent version, or
/// an object brought back over a delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictEntry {
    pub fid: Fid,
    pub parent: Fid,
    /// Its path from the volume root.
    pub path: String,
}

/// What a resolution did, for the caller and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveSummary {
    /// Objects compared.
    pub objects: u64,
    /// Replicas that received a new state.
    pub installs: u64,
    /// Objects whose replicas only needed their vectors merged.
    pub merges: u64,
    /// Conflicts found (each kept under a conflict name).
    pub conflicts: u64,
    /// Chunk bytes shipped to stale replicas.
    pub bytes_shipped: u64,
    /// Objects that could not be settled now (a replica unreachable, a race): retried later.
    pub unsettled: u64,
    /// Whole-volume comparisons with a peer whose change sequence no longer reached back
    /// far enough (rule 12).
    pub volume_compares: u64,
}

impl ResolveSummary {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ResolveSummary) {
        self.objects += other.objects;
        self.installs += other.installs;
        self.merges += other.merges;
        self.conflicts += other.conflicts;
        self.bytes_shipped += other.bytes_shipped;
        self.unsettled += other.unsettled;
        self.volume_compares += other.volume_compares;
    }
}

/// An object's replicated state as one replica holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectState {
    pub fid: Fid,
    pub attrs: Attrs,
    pub version: VersionVector,
    pub tag: ContentTag,
}

/// One directory entry in a READDIR reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: Name,
    pub cookie: u64,
    pub fid: Fid,
    pub state: Option<ObjectState>,
}

/// Summary of one volume: its name, root and replica group (VSG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub id: VolumeId,
    pub name: String,
    pub root: Fid,
    pub vsg: Vec<ReplicaMember>,
    /// The catalogue epoch at which the volume last changed (0: not from the catalogue).
    pub epoch: u64,
    /// The address ("host:port") of each server in `vsg`, by server name, so a client
    /// configured with one server reaches the others.
    pub addrs: Vec<(String, String)>,
}

/// One member of a volume's replica group: the replica id and the server holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaMember {
    pub replica: ReplicaId,
    pub server: String,
}

/// Space figures of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceInfo {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub used_bytes: u64,
    pub files: u64,
}

/// One entry of a server's change sequence: the object, and its replica's state digest
/// (`object_digest` of fid, tag and version) when the page was read, `None` when the
/// object is absent or forgotten there. A follower whose own digest is equal needs
/// nothing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: u64,
    pub fid: Fid,
    pub digest: Option<[u8; 32]>,
}

/// A successful reply; errors travel as [`FsError`] in [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyBody {
    Hello {
        server: String,
    },
    Incarnation {
        incarnation: Incarnation,
        unique: u32,
    },
    Volume(VolumeInfo),
    Volumes(Vec<VolumeInfo>),
    State(ObjectState),
    Dir {
        dir: ObjectState,
        entries: Vec<DirEntry>,
        eof: bool,
    },
    /// The bytes are in the frame's data section.
    Data {
        state: ObjectState,
        eof: bool,
    },
    Link {
        target: Vec<u8>,
    },
    /// One outcome per record, and per record a digest of the versions and states of the
    /// objects it changed *before* it was applied here (0 if nothing was applied): replicas
    /// with equal digests went through the same change, so each may count the others'
    /// application of it (the second phase, rule 2). `states`: the state, after the
    /// batch, of objects it changed that now carry a promise to the caller's session
    /// (rule 15), at most [`MAX_SHIPPED_STATES`]; the client may cache them once every
    /// replica has answered with the same tag.
    Shipped {
        outcomes: Vec<RecordOutcome>,
        priors: Vec<u64>,
        states: Vec<ObjectState>,
    },
    Space(SpaceInfo),
    Resolved(ResolveSummary),
    Status(ServerStatus),
    View(ReplicaView),
    Digests(Vec<[u8; 32]>),
    Blocks(Vec<BlockEntry>),
    Hashes(Vec<[u8; 32]>),
    /// Chunk lengths; the bytes are in the data section.
    Chunks(Vec<u32>),
    Done,
    Changes {
        entries: Vec<Change>,
        /// The change number to ask after next time.
        next: u64,
        /// The oldest change number still kept (older ones were compacted away).
        oldest: u64,
        /// The newest change number.
        last: u64,
    },
    /// An encoded catalogue answer.
    Catalogue(Vec<u8>),
    Cluster(ClusterInfo),
    /// Objects of the volume (live or deleted) with a digest of each one's state: (fid, digest), in
    /// vnode order, and the vnode to continue after (`None`: the last page).
    Objects {
        entries: Vec<(Fid, [u8; 32])>,
        next: Option<u64>,
    },
    /// Promises broken since the session's acknowledged breaks, up to break number `seq`.
    /// `fresh`: the server did not know the session (it restarted, or voided it), so no
    /// promise given before holds; `reset`: every promise of the session is broken.
    Breaks {
        fresh: bool,
        reset: bool,
        seq: u64,
        fids: Vec<Fid>,
        /// The server's number for the session.
        session: u64,
    },
}

/// What a server answers.
pub type Reply = Result<ReplyBody, FsError>;
