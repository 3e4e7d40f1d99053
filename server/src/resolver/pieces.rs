//! A file's data as the pieces an install ships: planned one differing block group at a
//! time, each piece's chunks fetched from the source as it is taken, only those the
//! destination lacks.

use super::MAX_INSTALL_BYTES;
use super::access::ReplicaAccess;
use crate::peer_error::PeerResult;
use codetta_wire::Fid;
use codetta_wire::replica::{BLOCK_GROUP, BlockEntry};
use std::collections::{BTreeMap, BTreeSet};

/// Block changes: the block index and its new entry, `None` for a block removed.
type BlockChanges = Vec<(u64, Option<BlockEntry>)>;

/// One install request: block changes, and the chunks among them the destination lacks.
pub(super) struct Piece {
    pub(super) blocks: BlockChanges,
    pub(super) chunks: Vec<([u8; 32], bytes::Bytes)>,
}

impl Piece {
    pub(super) fn chunk_bytes(&self) -> u64 {
        self.chunks.iter().map(|(_, c)| c.len() as u64).sum()
    }
}

/// The pieces that make a file's blocks at the destination equal to the source's: planned
/// one differing block group at a time, each piece's chunks fetched as it is taken.
pub(super) struct PieceSource<'r, R: ReplicaAccess> {
    src: &'r R,
    src_fid: Fid,
    dst: &'r R,
    dst_fid: Fid,
    /// Block groups whose digests differ, not yet planned.
    groups: std::collections::VecDeque<u64>,
    /// Groups the source has (a group past them is all removals).
    src_groups: u64,
    /// Planned pieces of the current group: block changes and the chunks to fetch.
    planned: std::collections::VecDeque<(BlockChanges, Vec<[u8; 32]>)>,
    /// Chunks the destination's changed blocks held, which the pieces planned so far let
    /// go of: a later piece needing one ships it rather than trust a copy that an earlier
    /// piece's install (possibly running while this one is planned) may have dropped.
    released: std::collections::HashSet<[u8; 32]>,
}

impl<'r, R: ReplicaAccess> PieceSource<'r, R> {
    pub(super) async fn new(
        src: &'r R,
        src_fid: Fid,
        dst: &'r R,
        dst_fid: Fid,
    ) -> PeerResult<Self> {
        let sd = src.block_digests(src_fid).await?;
        let dd = dst.block_digests(dst_fid).await?;
        let groups = (0..sd.len().max(dd.len()))
            .filter(|&g| sd.get(g) != dd.get(g))
            .map(|g| g as u64)
            .collect();
        Ok(PieceSource {
            src,
            src_fid,
            dst,
            dst_fid,
            groups,
            src_groups: sd.len() as u64,
            planned: Default::default(),
            released: Default::default(),
        })
    }

    /// The next piece with its chunks, `None` once every differing group is done.
    pub(super) async fn next(&mut self) -> PeerResult<Option<Piece>> {
        loop {
            if let Some((blocks, wanted)) = self.planned.pop_front() {
                let mut chunks = Vec::with_capacity(wanted.len());
                for part in wanted.chunks(crate::store::MAX_CHUNKS_PER_CALL) {
                    let got = self.src.chunks(part).await?;
                    chunks.extend(part.iter().copied().zip(got));
                }
                return Ok(Some(Piece { blocks, chunks }));
            }
            let Some(g) = self.groups.pop_front() else {
                return Ok(None);
            };
            self.plan(g).await?;
        }
    }

    /// Compares group `g` block by block and splits its changes into pieces of at most
    /// [`MAX_INSTALL_BYTES`] of chunk data the destination lacks.
    async fn plan(&mut self, g: u64) -> PeerResult<()> {
        let first = g * BLOCK_GROUP;
        let count = BLOCK_GROUP as u32;
        let have: BTreeMap<u64, BlockEntry> = self
            .dst
            .block_map(self.dst_fid, first, count)
            .await?
            .into_iter()
            .map(|b| (b.index, b))
            .collect();
        let want: BTreeMap<u64, BlockEntry> = if g < self.src_groups {
            self.src
                .block_map(self.src_fid, first, count)
                .await?
                .into_iter()
                .map(|b| (b.index, b))
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut changes: BlockChanges = Vec::new();
        for (i, b) in &want {
            if have.get(i) != Some(b) {
                changes.push((*i, Some(*b)));
            }
        }
        for i in have.keys() {
            if !want.contains_key(i) {
                changes.push((*i, None));
            }
        }
        self.released.extend(
            changes
                .iter()
                .filter_map(|(i, _)| have.get(i).map(|old| old.hash)),
        );
        let needed: Vec<[u8; 32]> = changes
            .iter()
            .filter_map(|(_, b)| b.map(|b| b.hash))
            .collect();
        let mut missing: BTreeSet<[u8; 32]> = self
            .dst
            .missing_chunks(&needed)
            .await?
            .into_iter()
            .collect();
        missing.extend(needed.iter().filter(|h| self.released.contains(*h)));
        let mut piece: BlockChanges = Vec::new();
        let mut wanted: Vec<[u8; 32]> = Vec::new();
        let mut bytes = 0usize;
        for change in changes {
            let len = match change.1 {
                Some(b) if missing.contains(&b.hash) && !wanted.contains(&b.hash) => b.len as usize,
                _ => 0,
            };
            if bytes + len > MAX_INSTALL_BYTES && !piece.is_empty() {
                self.planned
                    .push_back((std::mem::take(&mut piece), std::mem::take(&mut wanted)));
                bytes = 0;
            }
            if len > 0
                && let Some(b) = change.1
            {
                wanted.push(b.hash);
            }
            bytes += len;
            piece.push(change);
        }
        if !piece.is_empty() {
            self.planned.push_back((piece, wanted));
        }
        Ok(())
    }
}
