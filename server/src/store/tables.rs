//! Every persisted table, declared once.
//!
//! Keys are fixed-width integers (redb orders tuples element by element, integers
//! numerically). Values are `&[u8]` holding a format-version byte and a postcard body (see
//! [`super::codec`]), so that an undecodable value is an error we report rather than a panic
//! inside redb's `Value::from_bytes`. Chunk values are the exception: a version byte and the
//! raw bytes, split so that a 64 KiB block does not spill into a 128 KiB redb page.

use redb::TableDefinition;

/// Key of a vnode: (volume, vnode).
pub(crate) type VnodeKey = (u32, u64);
/// Key of a directory entry: (volume, directory vnode, cookie, name bytes).
pub(crate) type DirentKey = (u32, u64, u64, &'static [u8]);
/// Key of a file block: (volume, vnode, block index = offset / BLOCK_SIZE).
pub(crate) type BlockKey = (u32, u64, u64);
/// Key of a chunk in the index: its blake3 hash.
pub(crate) type ChunkKey = &'static [u8; 32];

/// Store-wide facts: `format` (u32) and totals `chunk_bytes`, `vnodes` (u64 each).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Volume id -> [`super::codec::VolumeRec`].
pub(crate) const VOLUMES: TableDefinition<u32, &[u8]> = TableDefinition::new("volumes");
/// Volume name -> volume id (u32).
pub(crate) const VOLUME_NAMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volume_names");
/// (volume, vnode) -> [`super::codec::Vnode`].
pub(crate) const VNODES: TableDefinition<VnodeKey, &[u8]> = TableDefinition::new("vnodes");
/// (volume, dir, cookie, name) -> [`super::codec::Dirent`].
pub(crate) const DIRENTS: TableDefinition<DirentKey, &[u8]> = TableDefinition::new("dirents");
/// (volume, vnode, block index) -> [`super::codec::BlockRef`].
pub(crate) const BLOCKS: TableDefinition<BlockKey, &[u8]> = TableDefinition::new("blocks");
/// Chunk hash -> [`super::codec::ChunkEntry`]: where the chunk is stored, its length and the
/// number of block rows naming it.
pub(crate) const CHUNK_INDEX: TableDefinition<ChunkKey, &[u8]> =
    TableDefinition::new("chunk_index");
/// Chunk id -> version byte + the first `CHUNK_HEAD_MAX - 1` bytes of the chunk. Ids are
/// handed out in increasing order, so new chunks append at the right edge of the B-tree
/// instead of landing at random places (as keys by hash did: 2.0 bytes written per byte
/// stored).
pub(crate) const CHUNK_HEADS: TableDefinition<u64, &[u8]> = TableDefinition::new("chunk_heads");
/// Chunk id -> version byte + the rest of a chunk longer than the head holds.
pub(crate) const CHUNK_TAILS: TableDefinition<u64, &[u8]> = TableDefinition::new("chunk_id_tails");
/// (client incarnation, volume) -> [`super::apply::AppliedRec`]: the highest sequence number
/// applied, the last outcomes, and how many records this replica missed.
pub(crate) const APPLIED: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("applied");
/// Client incarnations handed out or claimed here (value: empty), never given out again.
pub(crate) const INCARNATIONS: TableDefinition<u32, &[u8]> = TableDefinition::new("incarnations");
/// (volume, incarnation, seq) -> the fids (postcard `Vec<Fid>`) an applied record stamped,
/// until its second phase (COP2) says which replicas applied it.
pub(crate) const COP2_PENDING: TableDefinition<(u32, u32, u64), &[u8]> =
    TableDefinition::new("cop2_pending");

/// Largest chunk-head value (version byte included). A redb leaf holding one entry must fit
/// a power-of-two page: a 65,536-byte value plus its key and leaf header needs a 128 KiB
/// page (measured: 2.0x the file size). A head of 64 KiB - 256 fits a 64 KiB page with room
/// for the 8-byte key and header; the last 257 bytes of a full block go to `chunk_id_tails`,
/// whose small values share leaf pages.
pub(crate) const CHUNK_HEAD_MAX: usize = 64 * 1024 - 256;

/// Meta keys.
pub(crate) mod meta {
    pub(crate) const FORMAT: &str = "format";
    pub(crate) const CHUNK_BYTES: &str = "chunk_bytes";
    pub(crate) const VNODES: &str = "vnodes";
}

/// (volume, vnode) -> [`super::codec::Tombstone`]: a removed object's version and where it
/// was (rule 8), so that a stale replica's copy is deleted rather than brought back.
pub(crate) const TOMBSTONES: TableDefinition<VnodeKey, &[u8]> = TableDefinition::new("tombstones");
/// (volume, change number) -> the fid (16 bytes, [`codetta_wire::Fid::to_bytes`]) an update
/// or an install changed and when (u64 LE milliseconds, this server's clock): the
/// per-volume sequence peers ask "what since N" of (rule 12).
pub(crate) const CHANGES: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("changes");
/// (volume, peer replica) -> the change number (u64) this server has settled up to in that
/// peer's sequence.
pub(crate) const PEER_CURSORS: TableDefinition<(u32, u64), &[u8]> =
    TableDefinition::new("peer_cursors");
/// (volume, vnode) -> empty: objects resolution placed under a conflict name (copies and
/// resurrected objects), for `codetta conflicts`; entries whose object is gone or renamed
/// are skipped when listed.
pub(crate) const CONFLICTS: TableDefinition<VnodeKey, &[u8]> = TableDefinition::new("conflicts");

/// (volume, milliseconds, vnode) -> the uniquifier (postcard u32) of a tombstone made
/// then, waiting to be collected (rule 8). Entries whose tombstone went (the object came
/// back, or it was collected) are dropped when the collector reaches them.
pub(crate) const GC_QUEUE: TableDefinition<(u32, u64, u64), &[u8]> =
    TableDefinition::new("gc_queue");
/// (volume, client incarnation) -> the highest vnode counter (postcard u64) of that
/// incarnation whose tombstone was collected here: creates at or below it are refused.
pub(crate) const GC_FLOORS: TableDefinition<(u32, u32), &[u8]> = TableDefinition::new("gc_floors");
/// (volume, vnode) -> the uniquifier (postcard u32) of an object whose tombstone was
/// collected here past the GC horizon, while some replica was unreachable: it reads as
/// `Forgotten` until that replica collects it too (or brings it back as a conflict).
pub(crate) const COLLECTED: TableDefinition<VnodeKey, &[u8]> = TableDefinition::new("collected");
/// (client incarnation, volume) -> [`super::codec::Gaps`]: the records of that client this
/// replica missed while away or refused, so that resolution can tell which updates its state
/// includes beyond what histories remember (rule 5).
pub(crate) const APPLIED_GAPS: TableDefinition<(u32, u32), &[u8]> =
    TableDefinition::new("applied_gaps");
/// (volume, vnode) -> empty: regular files resolution is installing here (attributes or
/// blocks in, final version not yet; rule 4). Set in the transaction of each `install_meta`
/// and `install_blocks`, cleared by `install_version` and by the object's deletion, so a
/// crash between the pieces of an install leaves the mark. A marked file's data is not
/// served, client updates of it are refused, and its view says so (it is never a source).
pub(crate) const INSTALLING: TableDefinition<VnodeKey, &[u8]> = TableDefinition::new("installing");
/// (volume, replica id) -> the name of its server (postcard string): replicas that left
/// this volume's group while this one stayed (rule 13). A leaving replica hands over what it
/// holds after it left, so until it is gone from its server collection reaches it too: a
/// stale live copy it still holds must meet a tombstone there, not an absence that would
/// take it back as live.
pub(crate) const DEPARTED: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("departed");
/// Volume id -> empty: replicas that left their group (rule 13) whose objects are still
/// being deleted, a few at a time.
pub(crate) const PURGING: TableDefinition<u32, &[u8]> = TableDefinition::new("purging");
