//! The client's side of callbacks (rule 15): one channel per group member, a `Promises`
//! call kept outstanding on the member's connection, and the lease that says whether the
//! member's promises may be trusted right now.
//!
//! A member's promises are trusted while (a) the last answered call was *sent* less than
//! [`CALLBACK_LEASE`] ago (a server voids a silent session only after a longer wait, so a
//! client cut off stops trusting first) and (b) calls still go on the connection the
//! session lives on (a new connection has no promises). Breaks, resets and a server that
//! no longer knows the session ("fresh": it restarted or voided it) invalidate the cache.

use crate::cache::Cache;
use crate::link::ServerLink;
use codetta_wire::message::{CALLBACK_LEASE, ReplyBody};
use codetta_wire::{Request, VolumeId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Pause after a failed channel call before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy)]
struct Channel {
    /// The connection generation the session lives on.
    conn: u64,
    /// Until when its promises hold.
    lease_until: Instant,
}

/// The channels of one volume's members, by member index.
#[derive(Debug, Default)]
pub struct Channels {
    live: Mutex<HashMap<usize, Channel>>,
}

/// Which connection each member's calls go on, read before and after a fetch: a fill is
/// kept only if both readings agree and every channel was trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust(Vec<(usize, u64)>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Channels {
    /// Whether the promises of every AVSG member hold now, given each with the connection
    /// its calls go on now; `Some` carries those connections. An empty AVSG is never
    /// trusted.
    pub fn trusted(&self, avsg: impl IntoIterator<Item = (usize, u64)>) -> Option<Trust> {
        let live = lock(&self.live);
        let now = Instant::now();
        let mut conns = Vec::new();
        for (m, generation) in avsg {
            let c = live.get(&m)?;
            if c.lease_until <= now || c.conn != generation {
                return None;
            }
            conns.push((m, generation));
        }
        (!conns.is_empty()).then_some(Trust(conns))
    }

    fn lost(&self, m: usize) -> bool {
        lock(&self.live).remove(&m).is_some()
    }

    fn renew(&self, m: usize, conn: u64, lease_until: Instant) {
        lock(&self.live).insert(m, Channel { conn, lease_until });
    }
}

/// Runs member `m`'s channel until `stop` says so: each answer applies its breaks to
/// `cache` and renews the lease; a failure ends the member's promises (and the cache's
/// contents, which may rest on them).
pub async fn run_channel(
    m: usize,
    volume: VolumeId,
    link: &ServerLink,
    channels: &Channels,
    cache: &Mutex<Cache>,
    stop: impl Fn() -> bool,
) {
    let session = codetta_wire::entropy::random_u64();
    // The breaks acknowledged, and the server's number for the session they belong to.
    let mut ack = 0u64;
    let mut acked_session = 0u64;
    // The member's promises are gone: so is what the cache may hold on them.
    let lose = || {
        if channels.lost(m) {
            lock(cache).clear();
        }
    };
    while !stop() {
        let before = link.generation();
        let sent = Instant::now();
        let request = Request::Promises {
            volume,
            session,
            ack,
            acked_session,
        };
        let answer = match link.call(&request, bytes::Bytes::new()).await {
            Ok((
                ReplyBody::Breaks {
                    fresh,
                    reset,
                    seq,
                    fids,
                    session: number,
                },
                _,
            )) => Ok((fresh, reset, seq, fids, number)),
            Ok((other, _)) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        let (fresh, reset, seq, fids, number) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(server = link.server_name(), "callback channel: {e}");
                lose();
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        if fresh {
            // No promise given before holds: start over, and trust the session from its
            // next answer on (the first one may be about to be voided).
            channels.lost(m);
            lock(cache).clear();
            (ack, acked_session) = (0, number);
            continue;
        }
        {
            let mut cache = lock(cache);
            if reset {
                cache.clear();
            }
            for fid in &fids {
                cache.invalidate(fid);
            }
        }
        (ack, acked_session) = (seq, number);
        if link.generation() == before {
            channels.renew(m, before, sent + CALLBACK_LEASE);
        } else {
            lose();
        }
    }
    lose();
}
