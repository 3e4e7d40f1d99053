//! Real QUIC on loopback, with certificates made in a temporary directory per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::*;
use anyhow::Result;
use bytes::Bytes;
use codetta_certs::{CA_CERT_FILE, CA_KEY_FILE, Identity, Role, init_ca, issue};
use codetta_wire::frame::{FramePrefix, MAX_HEADER, PREFIX_LEN};
use codetta_wire::{Frame, FrameKind, FsError};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(10);

/// A cluster CA in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        init_ca(dir.path()).expect("init_ca");
        Pki { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join(CA_CERT_FILE)
    }

    fn identity(&self, role: Role, name: &str) -> Identity {
        let files = issue(self.dir.path(), role, name, self.dir.path()).expect("issue");
        Identity::load(&self.ca(), &files.cert, &files.key).expect("load")
    }
}

/// Echoes header and data; `whoami` answers with the caller's role and name; `slow` sleeps.
struct TestService;

impl Service for TestService {
    async fn handle(&self, peer: Arc<Peer>, request: Frame) -> Frame {
        let data = match &request.header[..] {
            b"whoami" => Bytes::from(format!("{} {}", peer.role, peer.name)),
            b"slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Bytes::new()
            }
            _ => request.data.contiguous(),
        };
        Frame {
            kind: FrameKind::Reply,
            header: request.header,
            data: data.into(),
        }
    }
}

struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    fn start(identity: &Identity) -> Server {
        let endpoint =
            server_endpoint((Ipv4Addr::LOCALHOST, 0).into(), identity).expect("server endpoint");
        let addr = endpoint.local_addr().expect("local addr");
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(serve(endpoint, Arc::new(TestService), shutdown));
        Server { addr, stop, task }
    }

    async fn stop(self) {
        self.stop.send(true).expect("serve is running");
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve stops after shutdown")
            .expect("serve does not panic");
    }
}

fn request(header: &'static [u8], data: Bytes) -> Frame {
    Frame {
        kind: FrameKind::Request,
        header: Bytes::from_static(header),
        data: data.into(),
    }
}

/// Sends raw bytes as one stream and reads the reply frame.
async fn raw_exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<Frame> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(bytes).await?;
    send.finish()?;
    Ok(tokio::time::timeout(DEADLINE, read_frame(&mut recv)).await??)
}

fn malformed_message(reply: &Frame) -> String {
    match reply.decode_reply() {
        Err(e) => panic!("undecodable reply: {e}"),
        Ok(Err(FsError::Malformed(message))) => message,
        Ok(other) => panic!("expected a Malformed error, got {other:?}"),
    }
}

#[tokio::test]
async fn echo_round_trip_with_4_mib_of_data() -> Result<()> {
    let pki = Pki::new();
    let server = Server::start(&pki.identity(Role::Server, "srv"));
    let client = pki.identity(Role::Client, "laptop");
    let endpoint = client_endpoint(&client)?;
    let conn = connect(&endpoint, server.addr, "srv", &client).await?;

    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let data = Bytes::from(data);
    let reply = call(&conn, &request(b"echo", data.clone()), DEADLINE).await?;
    assert_eq!(reply.kind, FrameKind::Reply);
    assert_eq!(&reply.header[..], b"echo");
    assert_eq!(reply.data.contiguous(), data);
    // Loopback tuning is in force: full-size packets from the start, no black hole.
    assert_eq!(conn.stats().path.current_mtu, 65_000);

    // Several requests at once share the connection.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let conn = conn.clone();
        calls.spawn(async move {
            let reply = call(&conn, &request(b"small", Bytes::from(vec![i])), DEADLINE).await;
            (i, reply)
        });
    }
    while let Some(joined) = calls.join_next().await {
        let (i, reply) = joined?;
        assert_eq!(&reply?.data.contiguous()[..], &[i]);
    }
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn peers_learn_each_others_role_and_name() -> Result<()> {
    let pki = Pki::new();
    let server = Server::start(&pki.identity(Role::Server, "srv"));
    let admin = pki.identity(Role::Admin, "ops");
    let endpoint = client_endpoint(&admin)?;
    let conn = connect(&endpoint, server.addr, "srv", &admin).await?;
    let peer = peer_of(&conn)?;
    assert_eq!(
        (peer.role, peer.name.as_str()),
        (Role::Server, "srv"),
        "{peer:?}"
    );
    assert_eq!(peer.fingerprint.len(), 64);
    let reply = call(&conn, &request(b"whoami", Bytes::new()), DEADLINE).await?;
    assert_eq!(&reply.data.contiguous()[..], b"admin ops");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() -> Result<()> {
    let pki = Pki::new();
    let server = Server::start(&pki.identity(Role::Server, "srv"));
    // Trusts the right CA, but its own certificate comes from a stranger's CA.
    let other = Pki::new();
    let files = issue(other.dir.path(), Role::Client, "intruder", other.dir.path())?;
    let intruder = Identity::load(&pki.ca(), &files.cert, &files.key)?;
    let endpoint = client_endpoint(&intruder)?;
    let outcome = async {
        let conn = connect(&endpoint, server.addr, "srv", &intruder).await?;
        call(&conn, &request(b"echo", Bytes::new()), DEADLINE).await
    }
    .await;
    // The server's TLS stack refuses the chain during the handshake.
    let error = format!("{:?}", outcome.expect_err("an intruder must not be served"));
    assert!(error.contains("invalid peer certificate"), "{error}");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_server_with_a_client_certificate_is_refused() -> Result<()> {
    let pki = Pki::new();
    let client = pki.identity(Role::Client, "laptop");
    let endpoint = client_endpoint(&client)?;

    // A client certificate lacks the serverAuth usage: TLS itself refuses it.
    let server = Server::start(&pki.identity(Role::Client, "fake"));
    let outcome = connect(&endpoint, server.addr, "fake", &client).await;
    assert!(
        matches!(outcome, Err(TransportError::Connection(_))),
        "{outcome:?}"
    );
    server.stop().await;

    // With serverAuth but the client role, the role check refuses it.
    let server = Server::start(&crafted_identity(&pki, "posing")?);
    let outcome = connect(&endpoint, server.addr, "posing", &client).await;
    assert!(
        matches!(
            outcome,
            Err(TransportError::WrongPeerRole {
                expected: Role::Server,
                actual: Role::Client
            })
        ),
        "{outcome:?}"
    );
    server.stop().await;
    Ok(())
}

/// A CA-signed certificate with the client role but the serverAuth usage, which `issue`
/// never produces: it isolates `connect`'s role check from TLS's usage check.
fn crafted_identity(pki: &Pki, name: &str) -> Result<Identity> {
    let dir = pki.dir.path();
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join(CA_KEY_FILE))?)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(pki.ca())?, ca_key)?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params
        .subject_alt_names
        .push(rcgen::SanType::URI(Role::Client.uri().try_into()?));
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok(Identity::load(&pki.ca(), &cert_path, &key_path)?)
}

#[tokio::test]
async fn malformed_streams_get_a_malformed_reply_and_serving_goes_on() -> Result<()> {
    let pki = Pki::new();
    let server = Server::start(&pki.identity(Role::Server, "srv"));
    let client = pki.identity(Role::Client, "laptop");
    let endpoint = client_endpoint(&client)?;
    let conn = connect(&endpoint, server.addr, "srv", &client).await?;

    // Garbage: wrong version byte.
    let reply = raw_exchange(&conn, b"this is not a frame at all").await?;
    assert!(malformed_message(&reply).contains("version"));

    // A stream that ends inside the header.
    let mut short = FramePrefix {
        kind: FrameKind::Request,
        header_len: 100,
        data_len: 0,
    }
    .to_bytes()
    .to_vec();
    short.extend_from_slice(b"12345");
    let reply = raw_exchange(&conn, &short).await?;
    assert!(malformed_message(&reply).contains("ended"));

    // A valid frame followed by more bytes.
    let mut trailing = request(b"echo", Bytes::from_static(b"data")).encode();
    trailing.extend_from_slice(b"more");
    let reply = raw_exchange(&conn, &trailing).await?;
    assert!(malformed_message(&reply).contains("continues"));

    // A reply frame where a request belongs.
    let wrong_kind = Frame {
        kind: FrameKind::Reply,
        ..request(b"echo", Bytes::new())
    };
    let reply = raw_exchange(&conn, &wrong_kind.encode()).await?;
    assert!(malformed_message(&reply).contains("request"));

    // The same connection still serves well-formed requests.
    let reply = call(
        &conn,
        &request(b"echo", Bytes::from_static(b"ok")),
        DEADLINE,
    )
    .await?;
    assert_eq!(&reply.data.contiguous()[..], b"ok");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_huge_length_in_the_prefix_is_refused_before_reading_on() -> Result<()> {
    let pki = Pki::new();
    let server = Server::start(&pki.identity(Role::Server, "srv"));
    let client = pki.identity(Role::Client, "laptop");
    let endpoint = client_endpoint(&client)?;
    let conn = connect(&endpoint, server.addr, "srv", &client).await?;

    for header_len in [u32::MAX, MAX_HEADER + 1] {
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(
            &FramePrefix {
                kind: FrameKind::Request,
                header_len: 0,
                data_len: 0,
            }
            .to_bytes(),
        );
        prefix[2..6].copy_from_slice(&header_len.to_be_bytes());
        // Only the prefix is sent: the answer cannot depend on reading (or buffering) the
        // claimed header.
        let reply = raw_exchange(&conn, &prefix).await?;
        assert!(
            malformed_message(&reply).contains(&format!("header of {header_len} bytes")),
            "{header_len}"
        );
    }
    let reply = call(
        &conn,
        &request(b"echo", Bytes::from_static(b"ok")),
        DEADLINE,
    )
    .await?;
    assert_eq!(&reply.data.contiguous()[..], b"ok");
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_slow_answer_times_out() -> Result<()> {
    let pki = Pki::new();
    let server = Server::start(&pki.identity(Role::Server, "srv"));
    let client = pki.identity(Role::Client, "laptop");
    let endpoint = client_endpoint(&client)?;
    let conn = connect(&endpoint, server.addr, "srv", &client).await?;
    let outcome = call(
        &conn,
        &request(b"slow", Bytes::new()),
        Duration::from_millis(200),
    )
    .await;
    assert!(
        matches!(outcome, Err(TransportError::Timeout(_))),
        "{outcome:?}"
    );
    drop(conn);
    // Shutdown lets the sleeping handler finish, then returns.
    server.stop().await;
    Ok(())
}

/// A link whose connection attempt failed answers the next call at once with
/// `RecentlyFailed` (not a timeout of its own), until the back-off has passed.
#[tokio::test]
async fn a_link_that_just_failed_says_so_until_the_back_off_passes() -> Result<()> {
    let pki = Pki::new();
    let client = pki.identity(Role::Client, "laptop");
    let endpoint = client_endpoint(&client)?;
    // A UDP port nobody answers on.
    let idle = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let entry = ServerEntry {
        name: "srv".into(),
        addr: idle.local_addr()?,
    };
    let link = Link::new(
        &entry,
        Arc::new(client),
        endpoint,
        Duration::from_millis(200),
    );
    let first = link.call(&request(b"x", Bytes::new())).await;
    assert!(
        matches!(first, Err(TransportError::Timeout(_))),
        "{first:?}"
    );
    let started = std::time::Instant::now();
    let second = link.call(&request(b"x", Bytes::new())).await;
    assert!(
        matches!(second, Err(TransportError::RecentlyFailed)),
        "{second:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "answered at once"
    );
    tokio::time::sleep(crate::link::RECONNECT_BACKOFF).await;
    let third = link.call(&request(b"x", Bytes::new())).await;
    assert!(
        matches!(third, Err(TransportError::Timeout(_))),
        "tried again: {third:?}"
    );
    Ok(())
}
