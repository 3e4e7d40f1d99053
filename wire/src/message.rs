//! Requests and replies. Each travels as one [`crate::Frame`] on its own QUIC stream.

use crate::attrs::Attrs;
use crate::error::FsError;
use crate::history::History;
use crate::ids::{Fid, Incarnation, ReplicaId, VolumeId};
use crate::name::Name;
use crate::replica::{BlockEntry, ObjectMeta, Placement, ReplicaView};
use crate::tag::ContentTag;
use crate::update::{Cop2, Follows, RecordOutcome, UpdateRecord};
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
        /// The incarnation the client took.
        incarnation: Incarnation,
    },
    /// Finds a volume by name (in the catalogue).
    VolumeByName {
        /// The volume's name.
        name: String,
    },
    /// Finds a volume by id (a handle into a volume the client has not opened yet).
    VolumeById {
        /// The volume's id.
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
        /// The volume the call is about.
        volume: VolumeId,
        /// The volume's catalogue epoch as the client knows it.
        epoch: u64,
        /// The postcard encoding of the request inside.
        call: Vec<u8>,
    },
    /// The state of `fid` (GETATTR).
    GetAttr {
        /// The object.
        fid: Fid,
    },
    /// The object named `name` in directory `dir` (LOOKUP).
    Lookup {
        /// The directory to look in.
        dir: Fid,
        /// The name to look up.
        name: Name,
    },
    /// The directory containing `dir` (a root is its own parent): LOOKUP of `..`.
    Parent {
        /// The directory whose parent is wanted.
        dir: Fid,
    },
    /// Entries after `cookie` (0 = from the start), at most `max_entries` of them.
    ReadDir {
        /// The directory to list.
        dir: Fid,
        /// The cookie of the last entry already listed (0: start from the beginning).
        cookie: u64,
        /// Most entries to return (the server may return fewer).
        max_entries: u32,
        /// Whether each entry comes with its object's state.
        with_attrs: bool,
    },
    /// Up to `count` bytes at `offset`; the bytes come back in the data section.
    Read {
        /// The file to read.
        fid: Fid,
        /// Byte offset of the first byte to read.
        offset: u64,
        /// Most bytes to read (capped at [`crate::MAX_READ`]).
        count: u32,
    },
    /// The target of symlink `fid` (READLINK).
    ReadLink {
        /// The symlink.
        fid: Fid,
    },
    /// A sequenced batch from the client's modify log; write data in the data section.
    ///
    /// `log_start` is the lowest sequence number the client still holds: a server whose
    /// last applied record is further back missed the records in between (they were applied
    /// elsewhere and trimmed) and continues from there, knowing it is stale. `cop2` tells
    /// which replicas applied earlier records (the second phase, rule 2).
    Ship {
        /// The records, in sequence order.
        records: Vec<UpdateRecord>,
        /// The lowest sequence number the client's modify log still holds.
        log_start: u64,
        /// Which replicas applied earlier runs of records.
        cop2: Vec<Cop2>,
        /// Per record (empty: none known), its predecessors ([`Follows`]).
        follows: Vec<Follows>,
    },
    /// Space figures of this server ([`SpaceInfo`]).
    FsStat {
        /// The volume asked about (the figures are for the server's whole store).
        volume: VolumeId,
    },
    /// Asks this server to resolve the objects: compare their replicas and bring every
    /// reachable one to the same state (client role; rule 6).
    Resolve {
        /// The objects to resolve.
        fids: Vec<Fid>,
    },
    /// Server to server, during resolution: this replica's view of an object.
    View {
        /// The object.
        fid: Fid,
    },
    /// Digests of a file's block map in groups of [`crate::replica::BLOCK_GROUP`] blocks.
    BlockDigests {
        /// The file.
        fid: Fid,
    },
    /// The block map of a file from block `first`, at most `count` entries.
    BlockMap {
        /// The file.
        fid: Fid,
        /// Index of the first block wanted.
        first: u64,
        /// Most entries to return (the server may return fewer).
        count: u32,
    },
    /// Which of these chunks this server lacks.
    MissingChunks {
        /// The chunk hashes to check.
        hashes: Vec<[u8; 32]>,
    },
    /// Chunk contents, concatenated in the data section.
    GetChunks {
        /// The hashes of the chunks wanted; their bytes come back in this order.
        hashes: Vec<[u8; 32]>,
    },
    /// Sets blocks of a (live) file if its version is still `expect`: `None` removes one;
    /// the data section holds the chunks listed in `chunks` (hash, length), which the
    /// receiver lacked.
    InstallBlocks {
        /// The live file to change.
        fid: Fid,
        /// The version the coordinator saw here; any other is refused with `VersionChanged`.
        expect: VersionVector,
        /// (block index, its new entry or `None` to remove it), for each block that changes.
        blocks: Vec<(u64, Option<BlockEntry>)>,
        /// (hash, length in bytes) of each chunk in the data section, in order.
        chunks: Vec<([u8; 32], u32)>,
    },
    /// Makes the object live with these attributes and placement (created if absent or
    /// deleted, with an empty version), if its version is still `expect`.
    InstallMeta {
        /// The object to install.
        fid: Fid,
        /// The version the coordinator saw here; any other is refused with `VersionChanged`.
        expect: VersionVector,
        /// Its attributes and placement.
        meta: ObjectMeta,
    },
    /// Sets the object's version and history if its version is still `expect`.
    InstallVersion {
        /// The object.
        fid: Fid,
        /// The version the coordinator saw here; any other is refused with `VersionChanged`.
        expect: VersionVector,
        /// The version vector to set.
        version: VersionVector,
        /// The update history to set.
        history: History,
    },
    /// Deletes the object (leaving a tombstone with this version) if its version is still
    /// `expect`.
    InstallDelete {
        /// The object to delete.
        fid: Fid,
        /// The version the coordinator saw here; any other is refused with `VersionChanged`.
        expect: VersionVector,
        /// The tombstone's version vector.
        version: VersionVector,
        /// The tombstone's update history.
        history: History,
        /// Where the object was (kept in the tombstone).
        placement: Placement,
    },
    /// The digest of each of the volume's [`crate::replica::DIGEST_BUCKETS`] buckets of
    /// objects (live and deleted): the upper level of the tree two replicas compare after a long absence
    /// (rule 12).
    VolumeDigests {
        /// The volume.
        volume: VolumeId,
    },
    /// The objects of the volume in the listed buckets, in vnode order after vnode
    /// `after`, at most `max` of them, each with its state digest.
    BucketObjects {
        /// The volume.
        volume: VolumeId,
        /// The bucket numbers ([`crate::replica::digest_bucket`]).
        buckets: Vec<u16>,
        /// The vnode to continue after (0 from the start).
        after: u64,
        /// Most objects to return (the server may return fewer).
        max: u32,
    },
    /// Collects the tombstone of `fid` (rule 8), in two rounds over every replica: first
    /// (`drop` false) the replica refuses creates of it from then on, then (`drop` true) it
    /// drops the tombstone, keeping a marker when `mark` (collected past the GC horizon
    /// without some replica). `Exists` when the object is live here.
    Forget {
        /// The deleted object.
        fid: Fid,
        /// `false`: the first round (creates refused from then on); `true`: drop the tombstone.
        drop: bool,
        /// With `drop`: keep a marker (collected past the GC horizon without some replica).
        mark: bool,
    },
    /// The catalogue (rule 13): a Raft message between servers (server role), or a read or
    /// proposed change (admin or server role). Bodies are postcard encodings of the
    /// server's catalogue types.
    Catalogue(CatalogueCall),
    /// Leases the objects to the coordinator `holder` for `ttl_ms` (all or none; `Leased`
    /// when another holder has one). Asking again extends the lease.
    Lease {
        /// The objects to lease.
        fids: Vec<Fid>,
        /// A token naming the coordinator (drawn at random); a release or renewal gives it again.
        holder: u64,
        /// How long the lease lasts, in milliseconds (the server may cap it).
        ttl_ms: u32,
    },
    /// Ends `holder`'s leases on the objects.
    Release {
        /// The objects whose leases end.
        fids: Vec<Fid>,
        /// The coordinator's token the leases were taken with.
        holder: u64,
    },
    /// What this server holds and has done: volumes, conflicts, resolution totals (admin
    /// or client role).
    Status,
    /// This server's changed objects in `volume` after its change number `since`, only
    /// those changed at least `older_than_ms` ago.
    Changes {
        /// The volume.
        volume: VolumeId,
        /// The change number to list after (0: from the start).
        since: u64,
        /// Most entries to return (the server may return fewer).
        max: u32,
        /// Leaves out changes younger than this many milliseconds (and objects that have one).
        older_than_ms: u32,
    },
    /// The callback channel of a client's `session` for `volume` on this connection (rule
    /// 15): acknowledges the breaks up to `ack` and waits (at most a heartbeat) for new
    /// ones. While a session lives, this connection's reads in `volume` leave promises.
    /// `acked_session` is the session number the acknowledgement is for (from the last
    /// answer), so a late call cannot acknowledge a newer session's breaks.
    Promises {
        /// The volume.
        volume: VolumeId,
        /// The client's number for the session (random, chosen when its channel starts).
        session: u64,
        /// The last break number the client acknowledges (`seq` of the last answer).
        ack: u64,
        /// The server's number for the session, from the last answer (0 before any).
        acked_session: u64,
    },
}

/// Cluster administration (`codetta cluster ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterCall {
    /// A server joins: it votes in the catalogue and may hold replicas.
    AddServer {
        /// The server's name.
        name: String,
        /// Its address ("IP:PORT").
        addr: String,
    },
    /// A server leaves (refused while it holds replicas).
    RemoveServer {
        /// The server's name.
        name: String,
    },
    /// The cluster's servers, root volume and revoked certificates ([`ClusterInfo`]).
    List,
    /// Servers refuse the certificate with this fingerprint from now on.
    Revoke {
        /// The certificate's fingerprint (blake3 of its DER bytes, in hex).
        fingerprint: String,
        /// Who or why, for the record.
        note: String,
    },
}

/// The cluster as `codetta cluster list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The catalogue's epoch.
    pub epoch: u64,
    /// (name, address, votes in the catalogue).
    pub servers: Vec<(String, String, bool)>,
    /// The name of the volume the export's root shows (`None`: none set).
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
        /// The new volume's name.
        name: String,
        /// The names of the servers to hold its replicas.
        replicas: Vec<String>,
    },
    /// Every volume in the catalogue.
    List,
    /// One volume's entry in the catalogue ([`VolumeInfo`]).
    Info {
        /// The volume's name.
        name: String,
    },
    /// Removes the volume from the catalogue; its replicas are deleted.
    Remove {
        /// The volume's name.
        name: String,
    },
    /// Adds a replica on `server`: it joins the group, then is filled.
    AddReplica {
        /// The volume's name.
        name: String,
        /// The name of the server to hold the new replica.
        server: String,
    },
    /// Removes `server`'s replica once nothing would be lost with it (drained first);
    /// `force` removes it even then.
    RemoveReplica {
        /// The volume's name.
        name: String,
        /// The name of the server whose replica goes.
        server: String,
        /// Removes the replica even if something would be lost with it.
        force: bool,
    },
    /// Makes the volume the one the export's root shows.
    SetRoot {
        /// The volume's name.
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
    /// The server's name.
    pub server: String,
    /// Each volume replica the server holds.
    pub volumes: Vec<VolumeStatus>,
    /// What resolution coordinated by this server has done since it started.
    pub resolution: ResolveSummary,
    /// The server's space figures.
    pub space: SpaceInfo,
}

/// One volume replica on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeStatus {
    /// The volume, as this server knows it.
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
    /// The object under the conflict name.
    pub fid: Fid,
    /// The directory holding the conflict name.
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
    /// The object.
    pub fid: Fid,
    /// Its attributes.
    pub attrs: Attrs,
    /// Its version vector on this replica.
    pub version: VersionVector,
    /// Its content tag on this replica.
    pub tag: ContentTag,
}

/// One directory entry in a READDIR reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// The entry's name.
    pub name: Name,
    /// The entry's cookie ([`Name::cookie`]): a later READDIR continues after it.
    pub cookie: u64,
    /// The object the entry names.
    pub fid: Fid,
    /// The object's state, when `with_attrs` asked for it and the object could be read.
    pub state: Option<ObjectState>,
}

/// Summary of one volume: its name, root and replica group (VSG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// The volume's id.
    pub id: VolumeId,
    /// The volume's name.
    pub name: String,
    /// The volume's root directory.
    pub root: Fid,
    /// The replica group: every replica of the volume and the server holding it.
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
    /// The replica's id.
    pub replica: ReplicaId,
    /// The name of the server holding it.
    pub server: String,
}

/// Space figures of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceInfo {
    /// Capacity in bytes: the configured one, or the size of the file system holding the store.
    pub total_bytes: u64,
    /// Bytes left: of the configured capacity, or available on that file system.
    pub free_bytes: u64,
    /// Bytes of stored chunk data (each chunk counted once).
    pub used_bytes: u64,
    /// Objects stored.
    pub files: u64,
}

/// One entry of a server's change sequence: the object, and its replica's state digest
/// (`object_digest` of fid, tag and version) when the page was read, `None` when the
/// object is absent or forgotten there. A follower whose own digest is equal needs
/// nothing for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The change number.
    pub seq: u64,
    /// The object that changed.
    pub fid: Fid,
    /// The object's state digest here, or `None` when it is absent or forgotten.
    pub digest: Option<[u8; 32]>,
}

/// A successful reply; errors travel as [`FsError`] in [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyBody {
    /// Answers `Hello` and `ClaimIncarnation`.
    Hello {
        /// The answering server's name.
        server: String,
    },
    /// Answers `NewIncarnation`.
    Incarnation {
        /// The new incarnation.
        incarnation: Incarnation,
        /// A random non-zero uniquifier for the fids the client makes under it.
        unique: u32,
    },
    /// One volume: answers the volume look-ups and some volume administration calls.
    Volume(VolumeInfo),
    /// Every volume in the catalogue: answers [`VolumeCall::List`].
    Volumes(Vec<VolumeInfo>),
    /// An object's state: answers `GetAttr`, `Lookup` and `Parent`.
    State(ObjectState),
    /// A page of a directory: answers `ReadDir`.
    Dir {
        /// The directory's own state.
        dir: ObjectState,
        /// The entries, in cookie order.
        entries: Vec<DirEntry>,
        /// No entries follow these.
        eof: bool,
    },
    /// The bytes are in the frame's data section.
    Data {
        /// The file's state.
        state: ObjectState,
        /// The bytes returned reach the end of the file.
        eof: bool,
    },
    /// Answers `ReadLink`.
    Link {
        /// The symlink's target.
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
        /// What became of each record, in order.
        outcomes: Vec<RecordOutcome>,
        /// Per record, the digest of the changed objects' prior states (0: nothing applied).
        priors: Vec<u64>,
        /// States after the batch of changed objects now promised to the caller's session.
        states: Vec<ObjectState>,
    },
    /// Answers `FsStat`.
    Space(SpaceInfo),
    /// What a resolution did: answers `Resolve`.
    Resolved(ResolveSummary),
    /// Answers `Status`.
    Status(ServerStatus),
    /// This replica's view of an object: answers `View`.
    View(ReplicaView),
    /// Answers `BlockDigests` and `VolumeDigests`.
    Digests(Vec<[u8; 32]>),
    /// Block map entries: answers `BlockMap`.
    Blocks(Vec<BlockEntry>),
    /// The hashes of the chunks this server lacks: answers `MissingChunks`.
    Hashes(Vec<[u8; 32]>),
    /// Chunk lengths; the bytes are in the data section.
    Chunks(Vec<u32>),
    /// The call succeeded and has nothing to return.
    Done,
    /// A page of the server's change sequence: answers `Changes`.
    Changes {
        /// The changes, in change-number order.
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
    /// Answers [`ClusterCall::List`].
    Cluster(ClusterInfo),
    /// Objects of the volume (live or deleted) with a digest of each one's state: (fid, digest), in
    /// vnode order, and the vnode to continue after (`None`: the last page).
    Objects {
        /// (fid, state digest) of each object.
        entries: Vec<(Fid, [u8; 32])>,
        /// The vnode to continue after (`None`: the last page).
        next: Option<u64>,
    },
    /// Promises broken since the session's acknowledged breaks, up to break number `seq`.
    /// `fresh`: the server did not know the session (it restarted, or voided it), so no
    /// promise given before holds; `reset`: every promise of the session is broken.
    Breaks {
        /// The server did not know the session: no earlier promise holds.
        fresh: bool,
        /// Every promise of the session is broken.
        reset: bool,
        /// The number of the last break reported; the next call acknowledges it.
        seq: u64,
        /// The objects whose promises broke (named by [`Fid::object`]).
        fids: Vec<Fid>,
        /// The server's number for the session.
        session: u64,
    },
}

/// What a server answers.
pub type Reply = Result<ReplyBody, FsError>;
