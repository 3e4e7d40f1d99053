//! Healing without a client (rule 12): every server numbers the changes it makes to each
//! volume; every second it asks each peer "what changed since N" and resolves the objects
//! whose replicas differ, with itself coordinating. A server back from a crash catches up
//! this way on its own. Recent changes wait a couple of seconds (the client's second phase
//! usually settles them first), and the cursor into each peer's sequence is stored, so a
//! restart does not compare everything again.

use crate::clock::SharedClock;
use crate::context::ServerContext;
use crate::pacing::Pacer;
use crate::resolver::{ReplicaAccess, Resolver};
use crate::store::Store;
use codetta_wire::message::{Change, ReplicaMember, ResolveSummary};
use codetta_wire::replica::{DIGEST_BUCKETS, ReplicaView, ViewBody};
use codetta_wire::{Fid, FsError, ReplicaId, VolumeId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::sync::watch;

/// Whether resolvers record their decisions (set by the simulation for its traces).
pub fn record_decisions() -> bool {
    RECORD_DECISIONS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Turns recording of decisions on or off for every resolver healing starts.
pub fn set_record_decisions(on: bool) {
    RECORD_DECISIONS.store(on, std::sync::atomic::Ordering::Relaxed);
}

static RECORD_DECISIONS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Changes younger than this are left for the next round.
pub const SETTLE_MS: u32 = 2000;
/// Changes read per request.
const PAGE: u32 = 1024;

/// Runs a healing round every `interval` until `stop` is set.
pub async fn run(ctx: ServerContext, interval: Duration, stop: watch::Receiver<bool>) {
    crate::periodic::every(interval, stop, || async {
        match heal_round(&ctx).await {
            Ok(s) if s.objects > 0 => tracing::info!(
                objects = s.objects,
                installs = s.installs,
                merges = s.merges,
                conflicts = s.conflicts,
                bytes = s.bytes_shipped,
                unsettled = s.unsettled,
                "healed"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!("healing round: {e}"),
        }
    })
    .await;
}

/// One pass over every replicated volume and every peer.
pub async fn heal_round(ctx: &ServerContext) -> Result<ResolveSummary, FsError> {
    let store = ctx.store().clone();
    let volumes = codetta_transport::off_thread(move || store.list_volumes())
        .await
        .map_err(|e| FsError::Internal(format!("store task: {e}")))??;
    let mut total = ResolveSummary::default();
    for vol in volumes.iter().filter(|v| v.vsg.len() > 1) {
        let (members, me) = ctx.members(vol.id)?;
        for peer in vol.vsg.iter().filter(|m| m.replica != me) {
            let s = pull(ctx, &members, me, vol.id, peer).await;
            total.add(&s);
        }
    }
    Ok(total)
}

/// Follows `peer`'s change sequence of `volume` from the stored cursor.
async fn pull<R: ReplicaAccess>(
    ctx: &ServerContext,
    members: &[R],
    me: ReplicaId,
    volume: VolumeId,
    peer: &ReplicaMember,
) -> ResolveSummary {
    follow(
        ctx.store(),
        members,
        me,
        volume,
        peer.replica,
        SETTLE_MS,
        Hooks {
            note: &|r| ctx.note_resolution(&r.summary),
            pacer: Some(ctx.pacer()),
            clock: Some(ctx.store().clock()),
        },
    )
    .await
}

/// Reads the change sequence of replica `peer` (one of `members`) of `volume` from where
/// `store` (the replica `me`) got to, resolves every object whose replicas differ, and
/// moves the stored cursor past what is settled. Changes younger than `older_than_ms` are
/// left for later. `hooks` sees each resolver as it finishes and paces them.
pub async fn follow<R: ReplicaAccess>(
    store: &Store,
    members: &[R],
    me: ReplicaId,
    volume: VolumeId,
    peer: ReplicaId,
    older_than_ms: u32,
    hooks: Hooks<'_, R>,
) -> ResolveSummary {
    let mut total = ResolveSummary::default();
    let Ok(mut cursor) = store.peer_cursor(volume, peer) else {
        return total;
    };
    let Some(peer_member) = members.iter().find(|m| m.replica() == peer) else {
        return total;
    };
    let own = members.iter().find(|m| m.replica() == me);
    let pair = Pair {
        members,
        me,
        own,
        peer: peer_member,
        hooks,
    };
    loop {
        let Ok(page) = peer_member
            .changes(volume, cursor, PAGE, older_than_ms)
            .await
        else {
            return total;
        };
        if page.oldest > cursor.saturating_add(1) && page.last > cursor {
            // The peer no longer keeps the changes right after the cursor (a long absence,
            // or a replica new to the group): compare whole volumes instead, then go on
            // from the peer's newest change.
            tracing::warn!(
                server = %peer_member.name(),
                missed = page.oldest - cursor - 1,
                "a peer's change sequence was trimmed past this server's cursor; comparing volumes"
            );
            let Some(own) = own else {
                return total;
            };
            total.volume_compares += 1;
            if !compare_volume(&pair, own, volume, &mut total)
                .await
                .is_some_and(|left| left.is_empty())
            {
                return total;
            }
            cursor = page.last;
            if store.set_peer_cursor(volume, peer, cursor).is_err() {
                return total;
            }
            continue;
        }
        if page.entries.is_empty() {
            // Nothing old enough, or only objects still being changed (their newer entries
            // come later): move past the latter.
            if page.next > cursor && store.set_peer_cursor(volume, peer, page.next).is_ok() {
                cursor = page.next;
                continue;
            }
            return total;
        }
        let mut unsettled = false;
        for fid in differing(store, own.is_some(), &page.entries) {
            match pair.settle(fid, &mut total).await {
                Some(settled) => unsettled |= !settled,
                // The peer went away: the rest of the page waits for the next round.
                None => return total,
            }
        }
        if unsettled {
            return total;
        }
        cursor = page.next;
        if store.set_peer_cursor(volume, peer, cursor).is_err() {
            return total;
        }
    }
}

/// The objects of a page of a peer's `changes` that may differ here: all of them, except
/// those whose digest here equals the peer's (when this server holds a replica: `own`).
/// The usual page, of updates every replica applied, needs no call to the peer.
pub(crate) fn differing(store: &Store, own: bool, changes: &[Change]) -> BTreeSet<Fid> {
    // The last entry of an object carries its digest as the page was read.
    let theirs: BTreeMap<Fid, Option<[u8; 32]>> =
        changes.iter().map(|c| (c.fid, c.digest)).collect();
    let fids: Vec<Fid> = theirs.keys().copied().collect();
    let mine = match own {
        true => store.object_digests(&fids).unwrap_or_else(|e| {
            tracing::warn!("reading digests to compare with a peer: {e}");
            Vec::new()
        }),
        false => Vec::new(),
    };
    theirs
        .into_iter()
        .enumerate()
        .filter(|(i, (_, digest))| digest.is_none() || mine.get(*i) != Some(digest))
        .map(|(_, (fid, _))| fid)
        .collect()
}

/// This replica and one peer, with the group they belong to.
struct Pair<'a, 'n, R: ReplicaAccess> {
    members: &'a [R],
    me: ReplicaId,
    own: Option<&'a R>,
    peer: &'a R,
    hooks: Hooks<'n, R>,
}

/// What healing does with each resolver besides running it.
pub struct Hooks<'n, R: ReplicaAccess> {
    /// Sees each resolver as it finishes.
    pub note: &'n (dyn Fn(&Resolver<'_, R>) + Sync),
    /// Paces the resolutions while clients update this server.
    pub pacer: Option<&'n Pacer>,
    /// The clock the resolvers renew their leases by (the store's; the system's if none).
    pub clock: Option<&'n SharedClock>,
}

impl<'n, R: ReplicaAccess> Hooks<'n, R> {
    /// No note, no pacing.
    pub fn none() -> Self {
        Hooks {
            note: &|_| {},
            pacer: None,
            clock: None,
        }
    }
}

impl<R: ReplicaAccess> Pair<'_, '_, R> {
    /// Resolves `fid` unless this replica and the peer already agree on it. `Some(true)`
    /// once they agree, `Some(false)` if it is left for later, `None` if the peer went
    /// away.
    async fn settle(&self, fid: Fid, total: &mut ResolveSummary) -> Option<bool> {
        // A replica cut short in an install is resolved even if its tag and version equal
        // the peer's: the install must end to clear its mark. (Not part of `agrees_with`:
        // the cursor moves on once tags and versions agree, so one mixture that cannot be
        // completed yet does not hold up the rest of the peer's changes.)
        if let Some(own) = self.own
            && let (Ok(a), Ok(b)) = (own.view(fid).await, self.peer.view(fid).await)
            && a.agrees_with(&b)
            && !a.installing
            && !b.installing
        {
            return Some(true);
        }
        let mut resolver = Resolver::new(self.members, self.me);
        if let Some(clock) = self.hooks.clock {
            resolver = resolver.with_clock(clock.clone());
        }
        resolver.decisions = record_decisions().then(Vec::new);
        resolver.pacer = self.hooks.pacer.cloned();
        resolver.install_delay = self
            .hooks
            .pacer
            .map_or(Duration::ZERO, Pacer::install_delay);
        resolver.resolve(fid).await;
        total.add(&resolver.summary);
        (self.hooks.note)(&resolver);
        // Settled only once this replica and the peer agree (a view lost on the way must
        // not let a difference slip past).
        let peer_view = self.peer.view(fid).await.ok()?;
        let agreed = match self.own {
            Some(own) => matches!(
                own.view(fid).await,
                Ok(a) if a.agrees_with(&peer_view)
            ),
            None => resolver.summary.unsettled == 0,
        };
        Some(resolver.summary.unsettled == 0 && agreed)
    }
}

/// Settles every object of `volume` on which this server's replica (`me`, one of
/// `members`) and the replica `peer` differ, through the digest tree: before `peer` leaves
/// the group, what only it holds reaches this one (rule 13). Returns the objects still
/// differing afterwards; an error when either replica could not be compared.
pub async fn drain<R: ReplicaAccess>(
    members: &[R],
    me: ReplicaId,
    volume: VolumeId,
    peer: ReplicaId,
) -> Result<(ResolveSummary, Vec<Fid>), FsError> {
    let find = |id: ReplicaId| members.iter().find(|m| m.replica() == id);
    let (Some(own), Some(peer_member)) = (find(me), find(peer)) else {
        return Err(FsError::Invalid);
    };
    let pair = Pair {
        members,
        me,
        own: Some(own),
        peer: peer_member,
        hooks: Hooks::none(),
    };
    let mut total = ResolveSummary::default();
    match compare_volume(&pair, own, volume, &mut total).await {
        Some(left) => Ok((total, left)),
        None => Err(FsError::Unavailable(format!(
            "could not compare the volume with {}",
            peer_member.name()
        ))),
    }
}

/// Whether everything a leaving replica's view `theirs` of an object holds is also in
/// `mine`: the same state, or one `mine` supersedes (rule 5), or nothing at all.
pub fn covered(theirs: &ReplicaView, mine: &ReplicaView) -> bool {
    use codetta_wire::history::{Relation, relate};
    matches!(theirs.body, ViewBody::Absent)
        || theirs.agrees_with(mine)
        || matches!(
            relate(theirs.version_view(), mine.version_view()),
            Relation::Same | Relation::Older
        )
}

/// Compares the whole of `volume` on this replica (`own`) and the peer through the digest
/// tree and settles every object whose digests differ (or that one side lacks). Returns
/// the objects left unsettled (`None` when a replica stopped answering).
async fn compare_volume<R: ReplicaAccess>(
    pair: &Pair<'_, '_, R>,
    own: &R,
    volume: VolumeId,
    total: &mut ResolveSummary,
) -> Option<Vec<Fid>> {
    let (Ok(mine), Ok(theirs)) = (
        own.volume_digests(volume).await,
        pair.peer.volume_digests(volume).await,
    ) else {
        return None;
    };
    if mine.len() != DIGEST_BUCKETS || theirs.len() != DIGEST_BUCKETS {
        tracing::warn!(server = %pair.peer.name(), "volume digests of the wrong shape");
        return None;
    }
    let differing: Vec<u16> = (0..DIGEST_BUCKETS)
        .filter(|&b| mine[b] != theirs[b])
        .map(|b| b as u16)
        .collect();
    let mut left = Vec::new();
    // A slice of the buckets at a time, so memory stays bounded on large volumes.
    for group in differing.chunks(BUCKETS_PER_PASS) {
        let (Some(a), Some(b)) = (
            objects_in(own, volume, group).await,
            objects_in(pair.peer, volume, group).await,
        ) else {
            return None;
        };
        let fids: BTreeSet<Fid> = a
            .iter()
            .filter(|(f, d)| b.get(*f) != Some(*d))
            .chain(b.iter().filter(|(f, d)| a.get(*f) != Some(*d)))
            .map(|(f, _)| *f)
            .collect();
        for fid in fids {
            match pair.settle(fid, total).await {
                Some(true) => {}
                Some(false) => left.push(fid),
                None => return None,
            }
        }
    }
    Some(left)
}

/// Buckets listed per pass of a volume comparison.
const BUCKETS_PER_PASS: usize = 256;

/// Every object (live or deleted) of `replica` in `buckets`, with its digest.
async fn objects_in<R: ReplicaAccess>(
    replica: &R,
    volume: VolumeId,
    buckets: &[u16],
) -> Option<BTreeMap<Fid, [u8; 32]>> {
    let mut out = BTreeMap::new();
    let mut after = 0;
    loop {
        let (entries, next) = replica.bucket_objects(volume, buckets, after).await.ok()?;
        out.extend(entries);
        match next {
            Some(n) if n > after => after = n,
            _ => return Some(out),
        }
    }
}
