//! The port against misbehaving peers, over real TCP on loopback, with a service that
//! echoes its arguments (procedure 1) and knows no other procedure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use codetta_oncrpc::xdr::{XdrReader, XdrWriter};

struct Echo;

impl RpcService for Echo {
    async fn call(&self, call: Call, _peer: SocketAddr) -> RpcReply {
        match call.proc {
            1 => RpcReply::Accepted(AcceptStat::Success, vec![call.args]),
            _ => RpcReply::Accepted(AcceptStat::ProcUnavail, Vec::new()),
        }
    }
}

fn limits() -> PortLimits {
    PortLimits {
        max_connections: 8,
        max_in_flight: 4,
        max_call_bytes: 1 << 20,
        records: RecordLimits {
            max_record: 64 << 10,
            max_fragments: 16,
        },
        idle: Duration::from_secs(30),
        allow_unprivileged: false,
    }
}

async fn start(limits: PortLimits) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = watch::channel(false);
    tokio::spawn(serve(listener, limits, Arc::new(Echo), rx));
    (addr, stop)
}

/// A connection from a privileged source port (the test runs as root, as CI does), or
/// from any port.
async fn connect(addr: SocketAddr, privileged: bool) -> TcpStream {
    if !privileged {
        return TcpStream::connect(addr).await.unwrap();
    }
    for port in (600..1024).rev() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .is_ok()
            && let Ok(stream) = socket.connect(addr).await
        {
            return stream;
        }
    }
    panic!("no privileged port could be bound (the test needs root)");
}

/// A call record: `xid`, NFS program 3, `proc`, AUTH_SYS as `uid`, `args`.
fn call(xid: u32, proc: u32, uid: u32, args: &[u8]) -> Vec<u8> {
    let mut cred = XdrWriter::new();
    cred.u32(0).opaque(b"test").u32(uid).u32(uid).u32(0);
    let cred = cred.into_inner();
    let mut w = XdrWriter::new();
    w.u32(xid).u32(0).u32(2).u32(100003).u32(3).u32(proc);
    w.u32(1).opaque(&cred).u32(0).opaque(&[]);
    w.fixed(args);
    let body = w.into_inner();
    let mut out = single_fragment_mark(body.len() as u32).to_vec();
    out.extend_from_slice(&body);
    out
}

/// Reads one reply: (xid, the words after the xid).
async fn reply(stream: &mut TcpStream) -> (u32, Vec<u32>) {
    let mut mark = [0u8; 4];
    stream.read_exact(&mut mark).await.unwrap();
    let len = (u32::from_be_bytes(mark) & 0x7fff_ffff) as usize;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    let mut r = XdrReader::new(Bytes::from(body));
    let xid = r.u32().unwrap();
    let mut words = Vec::new();
    while let Ok(w) = r.u32() {
        words.push(w);
    }
    (xid, words)
}

/// A reply that accepted the call with `SUCCESS` (REPLY, MSG_ACCEPTED, empty verifier).
const SUCCESS: [u32; 5] = [1, 0, 0, 0, 0];

#[tokio::test]
async fn calls_are_answered_in_flight_together_and_refusals_keep_the_connection() {
    let (addr, _stop) = start(limits()).await;
    let mut s = connect(addr, true).await;
    let mut all = Vec::new();
    for xid in 0..100u32 {
        all.extend(call(xid, 1, 1000, &xid.to_be_bytes()));
    }
    // An unknown procedure, a wrong RPC version and a reply: answered or ignored, and
    // the connection goes on.
    all.extend(call(500, 9, 1000, &[]));
    let mut wrong = call(501, 1, 1000, &[]);
    wrong[15] = 3;
    all.extend(wrong);
    all.extend(single_fragment_mark(8));
    all.extend([0, 0, 0, 7, 0, 0, 0, 1]);
    all.extend(call(502, 1, 1000, &[9, 9, 9, 9]));
    s.write_all(&all).await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..103 {
        let (xid, words) = reply(&mut s).await;
        seen.insert(xid, words);
    }
    for xid in 0..100u32 {
        assert_eq!(seen[&xid][..5], SUCCESS, "call {xid}");
        assert_eq!(seen[&xid][5..], [xid], "echoed arguments of {xid}");
    }
    assert_eq!(seen[&500], vec![1, 0, 0, 0, 3], "PROC_UNAVAIL");
    assert_eq!(seen[&501], vec![1, 1, 0, 2, 2], "RPC_MISMATCH");
    assert_eq!(seen[&502][5..], [0x0909_0909]);
}

#[tokio::test]
async fn an_unprivileged_port_is_refused_unless_allowed() {
    let (addr, _stop) = start(limits()).await;
    let mut s = connect(addr, false).await;
    s.write_all(&call(7, 1, 0, &[])).await.unwrap();
    assert_eq!(
        reply(&mut s).await,
        (7, vec![1, 1, 1, 5]),
        "AUTH_ERROR AUTH_TOOWEAK"
    );
    let (addr, _stop) = start(PortLimits {
        allow_unprivileged: true,
        ..limits()
    })
    .await;
    let mut s = connect(addr, false).await;
    s.write_all(&call(8, 1, 0, &[])).await.unwrap();
    assert_eq!(reply(&mut s).await.1[..5], SUCCESS);
}

#[tokio::test]
async fn garbage_closes_its_own_connection_only_and_connections_are_bounded() {
    let (addr, _stop) = start(limits()).await;
    let mut client = connect(addr, true).await;
    // A record mark claiming 2 GiB, then a little garbage: that connection is closed.
    let mut bad = connect(addr, true).await;
    bad.write_all(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    // Many connections that send nothing: past the bound they are closed at once.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut refused = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            refused += 1;
        }
    }
    assert!(refused >= 50 - 8, "{refused} of 50 closed");
    // The connection that was there first goes on.
    client
        .write_all(&call(1, 1, 1000, &[1, 2, 3, 4]))
        .await
        .unwrap();
    assert_eq!(reply(&mut client).await.1[..5], SUCCESS);
}

#[tokio::test]
async fn refused_connections_never_crowd_out_the_kernel_client() {
    let (addr, _stop) = start(limits()).await;
    // Unprivileged connections that send nothing: past their own small pool they are
    // closed at once, and the rest after a short silence.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(connect(addr, false).await);
    }
    // A privileged connection still gets in, past 50 > max_connections of them.
    let mut kernel = connect(addr, true).await;
    kernel
        .write_all(&call(3, 1, 0, &[5, 5, 5, 5]))
        .await
        .unwrap();
    assert_eq!(reply(&mut kernel).await.1[..5], SUCCESS);
    let mut open = 0;
    for s in &mut idle {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(REFUSED_IDLE * 3, s.read_to_end(&mut rest)).await;
        open += usize::from(closed.is_err());
    }
    assert_eq!(open, 0, "every refused connection closed");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let (addr, _stop) = start(PortLimits {
        idle: Duration::from_millis(300),
        ..limits()
    })
    .await;
    let mut s = connect(addr, true).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}
