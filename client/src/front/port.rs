//! The NFS port: accepting connections, reading records and calls from them, answering.
//!
//! Anyone on the machine can connect to the port and send anything, so what must hold:
//! - memory a peer drives is bounded before it is taken: at most `max_connections` open
//!   (more are closed at once), per connection one read buffer and one record being
//!   assembled ([`codetta_oncrpc::RecordReader`]: at most `max_record`), at most
//!   `max_in_flight` calls being carried out, and all connections together at most
//!   `max_call_bytes` of received calls not yet answered;
//! - a connection that cannot be framed any more (a record past the bound) is closed; a
//!   call that can be answered is answered (refusals included) and the connection goes on;
//! - a call from an unprivileged source port (>= 1024: any local user can open one, and
//!   claim any uid in its AUTH_SYS credential) is refused `AUTH_TOOWEAK`, unless
//!   `allow_unprivileged` (macOS's client, tests); the kernel's client sends from a
//!   privileged port, which only root can bind. Refused connections have a small pool of
//!   their own ([`REFUSED_CONNECTIONS`], closed after [`REFUSED_IDLE`] of silence), so no
//!   number of them keeps the kernel's client from connecting;
//! - a connection that sends nothing for `idle` is closed (the kernel client reconnects
//!   when it needs to).

use bytes::Bytes;
use codetta_oncrpc::call::{Call, CallError, decode_call};
use codetta_oncrpc::record::{RecordLimits, RecordReader, single_fragment_mark};
use codetta_oncrpc::reply::{self, AcceptStat, AuthStat};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// The bounds of the NFS port (see the module's text). `max_call_bytes` must be at least
/// `records.max_record` (a call of the largest size must fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortLimits {
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub max_call_bytes: usize,
    pub records: RecordLimits,
    pub idle: Duration,
    pub allow_unprivileged: bool,
}

impl PortLimits {
    /// The daemon's bounds for calls of at most `max_write` bytes of data (the largest
    /// WRITE the server announces) plus headers.
    pub fn for_writes_of(max_write: usize) -> PortLimits {
        PortLimits {
            max_connections: 128,
            max_in_flight: 32,
            max_call_bytes: 256 << 20,
            records: RecordLimits {
                max_record: max_write + 4096,
                max_fragments: 64,
            },
            idle: Duration::from_secs(360),
            allow_unprivileged: false,
        }
    }

    /// The most memory peers can make the port hold, in bytes: received calls, the records
    /// being assembled and the read buffers. Replies are not in it: each holds its call's
    /// permits until written (at most `max_in_flight` per connection, each at most a READ's
    /// 1 MiB, for at most [`WRITE_STALL`]), and only trusted peers' calls are carried out.
    pub fn memory_bound(&self) -> usize {
        self.max_call_bytes
            + (self.max_connections + REFUSED_CONNECTIONS)
                * (self.records.max_record + READ_BUFFER + 4)
    }
}

/// How much one read from a connection takes.
const READ_BUFFER: usize = 64 << 10;
/// Most connections from unprivileged ports open at once while their calls are refused.
pub const REFUSED_CONNECTIONS: usize = 8;
/// How long such a connection may stay silent.
pub const REFUSED_IDLE: Duration = Duration::from_secs(2);

/// A reply to one call.
#[derive(Debug)]
pub enum RpcReply {
    /// Accepted with this status; for `Success`, the procedure's results (XDR) follow the
    /// header, written as these buffers.
    Accepted(AcceptStat, Vec<Bytes>),
    /// Refused for its credential.
    Denied(AuthStat),
    /// No reply: the same call is being carried out (see `front::replay`).
    Dropped,
}

/// What carries out the calls the port reads.
pub trait RpcService: Send + Sync + 'static {
    /// Carries out `call`, sent from `peer`.
    fn call(&self, call: Call, peer: SocketAddr) -> impl Future<Output = RpcReply> + Send;
}

/// True for a source port only root can bind (the kernel NFS client's).
pub fn privileged(peer: &SocketAddr) -> bool {
    peer.port() < 1024
}

/// Serves `listener` with `service` until `stop` is set.
pub async fn serve<S: RpcService>(
    listener: TcpListener,
    limits: PortLimits,
    service: Arc<S>,
    mut stop: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refused = Arc::new(Semaphore::new(REFUSED_CONNECTIONS));
    let call_bytes = Arc::new(Semaphore::new(limits.max_call_bytes));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: the connections open go on; try again soon.
                tracing::warn!("NFS port: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let trusted = limits.allow_unprivileged || privileged(&peer);
        let (pool, limits) = if trusted {
            (&connections, limits)
        } else {
            let idle = limits.idle.min(REFUSED_IDLE);
            (&refused, PortLimits { idle, ..limits })
        };
        let Ok(slot) = pool.clone().try_acquire_owned() else {
            tracing::warn!(%peer, trusted, "NFS port: too many connections open; closing a new one");
            continue;
        };
        let (service, call_bytes) = (service.clone(), call_bytes.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(socket, peer, trusted, limits, service, call_bytes).await {
                tracing::debug!(%peer, "NFS connection closed: {e}");
            }
        });
    }
}

/// Why a connection was closed by this side.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Framing(#[from] codetta_oncrpc::RecordError),
    #[error("a record too short for an RPC message")]
    Unanswerable,
    #[error("idle for {0:?}")]
    Idle(Duration),
}

/// One connection: reads records, hands calls to tasks (bounded), writes their replies in
/// the order they finish.
async fn connection<S: RpcService>(
    socket: TcpStream,
    peer: SocketAddr,
    trusted: bool,
    limits: PortLimits,
    service: Arc<S>,
    call_bytes: Arc<Semaphore>,
) -> Result<(), Closed> {
    let _ = socket.set_nodelay(true);
    let (mut rd, mut wr) = socket.into_split();
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let (replies, mut outgoing) = mpsc::channel::<Outgoing>(limits.max_in_flight + 1);
    let writer = tokio::spawn(async move {
        // A call's permits go with its reply until it is written: replies waiting for a peer
        // that does not read stay within the call bounds, and one not taken within
        // WRITE_STALL closes the connection.
        while let Some((reply, _permits)) = outgoing.recv().await {
            let len: usize = reply.iter().map(Bytes::len).sum();
            let mark = single_fragment_mark(u32::try_from(len).unwrap_or(u32::MAX));
            let mut parts = Vec::with_capacity(reply.len() + 1);
            parts.push(std::io::IoSlice::new(&mark));
            parts.extend(reply.iter().map(|p| std::io::IoSlice::new(p)));
            match tokio::time::timeout(WRITE_STALL, write_all_vectored(&mut wr, &parts)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
    });
    let mut reader = RecordReader::new(limits.records);
    let mut buf = vec![0u8; READ_BUFFER];
    // A call holds at most all of the received-bytes budget (a configuration with a
    // record larger than the budget must not make a call wait forever).
    let most_bytes = u32::try_from(limits.max_call_bytes)
        .unwrap_or(u32::MAX)
        .max(1);
    let outcome = loop {
        let n = match tokio::time::timeout(limits.idle, rd.read(&mut buf)).await {
            Err(_) => break Err(Closed::Idle(limits.idle)),
            Ok(Err(e)) => break Err(e.into()),
            Ok(Ok(0)) => break Ok(()),
            Ok(Ok(n)) => n,
        };
        reader.push(buf.get(..n).unwrap_or_default());
        let mut failed = None;
        loop {
            let record = match reader.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(e) => {
                    failed = Some(Closed::from(e));
                    break;
                }
            };
            let answer = match decode_call(record) {
                Ok(call) if !trusted => Some(reply::auth_error(call.xid, AuthStat::TooWeak)),
                Ok(call) => {
                    // Bounded before the call is carried out: calls in flight here, and
                    // received bytes across all connections.
                    let Ok(slot) = in_flight.clone().acquire_owned().await else {
                        break;
                    };
                    let size = u32::try_from(call.args.len())
                        .unwrap_or(u32::MAX)
                        .clamp(1, most_bytes);
                    let Ok(bytes) = call_bytes.clone().acquire_many_owned(size).await else {
                        break;
                    };
                    dispatch(call, peer, service.clone(), replies.clone(), (slot, bytes));
                    if replies.is_closed() {
                        // The writer gave up on this peer.
                        break;
                    }
                    None
                }
                Err(CallError::Unanswerable) => {
                    failed = Some(Closed::Unanswerable);
                    break;
                }
                Err(CallError::NotACall { .. }) => None,
                Err(CallError::RpcMismatch { xid, .. }) => Some(reply::rpc_mismatch(xid)),
                Err(CallError::BadCredential { xid, stat, reason }) => {
                    tracing::debug!(%peer, "NFS call refused: {reason}");
                    Some(reply::auth_error(xid, stat))
                }
            };
            if let Some(answer) = answer
                && replies
                    .send((vec![answer.into_inner().freeze()], None))
                    .await
                    .is_err()
            {
                break;
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
    };
    drop(replies);
    let _ = writer.await;
    outcome
}

/// A reply to write and the permits of its call.
type Outgoing = (Vec<Bytes>, Option<Permits>);
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// How long a reply may wait for the peer to take it before the connection is closed.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// Carries out `call` on its own task; its permits go with the reply to the writer.
fn dispatch<S: RpcService>(
    call: Call,
    peer: SocketAddr,
    service: Arc<S>,
    replies: mpsc::Sender<Outgoing>,
    permits: Permits,
) {
    tokio::spawn(async move {
        let xid = call.xid;
        // The header, then the results as the service made them (a READ's data is the
        // read's own buffer): written with one vectored write, never copied together.
        let reply = match service.call(call, peer).await {
            RpcReply::Accepted(stat, results) => {
                let mut parts = Vec::with_capacity(results.len() + 1);
                parts.push(reply::accepted(xid, stat).into_inner().freeze());
                parts.extend(results);
                parts
            }
            RpcReply::Denied(stat) => vec![reply::auth_error(xid, stat).into_inner().freeze()],
            RpcReply::Dropped => return,
        };
        let _ = replies.send((reply, Some(permits))).await;
    });
}

/// Writes every byte of `parts` with vectored writes.
async fn write_all_vectored(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    parts: &[std::io::IoSlice<'_>],
) -> std::io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut written = 0;
    while written < total {
        let mut skip = written;
        let mut rest = Vec::with_capacity(parts.len());
        for p in parts {
            if skip >= p.len() {
                skip -= p.len();
                continue;
            }
            rest.push(std::io::IoSlice::new(p.get(skip..).unwrap_or_default()));
            skip = 0;
        }
        let n = wr.write_vectored(&rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
