//! Endpoints with tuned sockets, outgoing connections, and who is on the other end.

use crate::ConnectionEnd;
use crate::serve::CLOSE_BAD_PEER;
use crate::{ENDPOINT_MAX_UDP_PAYLOAD, SOCKET_BUFFER_BYTES, TransportError, TransportTuning};
use codetta_certs::pki_types::CertificateDer;
use codetta_certs::{Identity, Role, peer_identity};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, EndpointConfig};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Who is on the other end of a connection, as its CA-signed certificate says.
#[derive(Debug, Clone)]
pub struct Peer {
    pub role: Role,
    pub name: String,
    /// The fingerprint of the certificate it presented (revocation checks it).
    pub fingerprint: String,
    /// The connection it came on (its end ends per-connection state, such as callback
    /// sessions).
    pub connection: ConnectionEnd,
    /// A number for that connection, never reused in this process (quinn's `stable_id`
    /// may be, once a connection is gone).
    pub connection_id: u64,
}

/// Connections identified so far in this process.
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A connection number never used before in this process.
fn next_connection_id() -> u64 {
    CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}

/// Reads the peer's role and name from the certificate it presented in the handshake. Only
/// meaningful once the handshake (which verified the chain against the cluster CA) is done.
pub fn peer_of(conn: &quinn::Connection) -> Result<Peer, TransportError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TransportError::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(TransportError::NoPeerCertificate)?;
    let (role, name) = peer_identity(leaf)?;
    Ok(Peer {
        role,
        name,
        fingerprint: codetta_certs::fingerprint(leaf),
        connection: ConnectionEnd::Quic(conn.clone()),
        connection_id: next_connection_id(),
    })
}

/// A UDP socket with large kernel buffers (quinn's bursts of 64 KB packets overflow the
/// defaults). The kernel may grant less than asked; that is logged, not fatal.
fn bind_socket(addr: SocketAddr, dual_stack: bool) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(%e, "cannot set SO_SNDBUF");
    }
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::debug!(%e, "cannot set SO_RCVBUF");
    }
    tracing::debug!(
        %addr,
        sndbuf = socket.send_buffer_size().unwrap_or(0),
        rcvbuf = socket.recv_buffer_size().unwrap_or(0),
        "UDP socket buffers"
    );
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn new_endpoint(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> Result<Endpoint, TransportError> {
    let runtime = quinn::default_runtime().ok_or(TransportError::NoRuntime)?;
    let mut config = EndpointConfig::default();
    config.max_udp_payload_size(ENDPOINT_MAX_UDP_PAYLOAD)?;
    Ok(Endpoint::new(config, server, socket, runtime)?)
}

fn quinn_server_config(
    identity: &Identity,
    tuning: TransportTuning,
) -> Result<quinn::ServerConfig, TransportError> {
    let tls = QuicServerConfig::try_from(codetta_certs::server_config(identity)?)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(tls));
    config.transport_config(Arc::new(tuning.transport_config()));
    Ok(config)
}

fn quinn_client_config(
    identity: &Identity,
    tuning: TransportTuning,
) -> Result<quinn::ClientConfig, TransportError> {
    let tls = QuicClientConfig::try_from(codetta_certs::client_config(identity)?)?;
    let mut config = quinn::ClientConfig::new(Arc::new(tls));
    config.transport_config(Arc::new(tuning.transport_config()));
    Ok(config)
}

/// A server endpoint on `bind`, requiring client certificates from the cluster CA.
///
/// quinn fixes a server's transport settings per endpoint, so they follow the bind address:
/// loopback tuning when bound to a loopback address (then every peer is local), LAN tuning
/// otherwise. The endpoint can also dial other servers (LAN defaults; [`connect`] picks per
/// peer).
pub fn server_endpoint(bind: SocketAddr, identity: &Identity) -> Result<Endpoint, TransportError> {
    let server = quinn_server_config(identity, TransportTuning::for_peer(bind))?;
    let mut endpoint = new_endpoint(bind_socket(bind, false)?, Some(server))?;
    endpoint.set_default_client_config(quinn_client_config(identity, TransportTuning::lan())?);
    Ok(endpoint)
}

/// A client-only endpoint on an ephemeral port: dual-stack `[::]:0` where the system allows
/// it (reaches IPv4 and IPv6 servers), `0.0.0.0:0` otherwise.
pub fn client_endpoint(identity: &Identity) -> Result<Endpoint, TransportError> {
    let socket = bind_socket((Ipv6Addr::UNSPECIFIED, 0).into(), true).or_else(|e| {
        tracing::debug!(%e, "no dual-stack socket; using IPv4 only");
        bind_socket((Ipv4Addr::UNSPECIFIED, 0).into(), false)
    })?;
    let mut endpoint = new_endpoint(socket, None)?;
    endpoint.set_default_client_config(quinn_client_config(identity, TransportTuning::lan())?);
    Ok(endpoint)
}

/// Connects to the server `server_name` at `addr` with transport settings chosen for that
/// address, and checks that the certificate it presented says [`Role::Server`]: a client's
/// certificate must not be able to pose as a server.
pub async fn connect(
    endpoint: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
    identity: &Identity,
) -> Result<quinn::Connection, TransportError> {
    let config = quinn_client_config(identity, TransportTuning::for_peer(addr))?;
    let conn = endpoint.connect_with(config, addr, server_name)?.await?;
    let checked = peer_of(&conn).and_then(|peer| match peer.role {
        Role::Server => Ok(()),
        actual => Err(TransportError::WrongPeerRole {
            expected: Role::Server,
            actual,
        }),
    });
    if let Err(e) = checked {
        conn.close(CLOSE_BAD_PEER, b"not a server certificate");
        return Err(e);
    }
    Ok(conn)
}
