//! The cluster CA, node certificates and the rustls configurations built from them.
//!
//! One CA per cluster signs every node's certificate; QUIC connections use mutual TLS against
//! that CA only. A node's private key is generated on the machine that uses it ([`issue`] runs
//! there) and written with mode 0600.
//!
//! # Where the role lives
//!
//! A node certificate carries:
//! - subject CN = the node name, and one DNS SAN = the node name (servers are dialled by name);
//! - exactly one URI SAN `codetta:role:<server|client|admin>` ([`ROLE_URI_PREFIX`]). It is inside
//!   the CA-signed certificate, so a peer cannot change it; [`peer_identity`] refuses a
//!   certificate without exactly one such URI;
//! - extended key usages that make the role matter to TLS itself: servers get `serverAuth` and
//!   `clientAuth` (they dial each other), clients and admins only `clientAuth`, so a client's key
//!   cannot pass a TLS server-certificate check even before the role is looked at.

mod ca;
mod error;
mod identity;
mod role;
mod tls;

pub use ca::{
    CA_CERT_FILE, CA_KEY_FILE, CA_VALIDITY, DEFAULT_VALIDITY, NodeFiles, init_ca, issue,
    issue_with_validity, validate_name,
};
pub use error::CertError;
pub use identity::{Identity, certificate_fingerprint, fingerprint, peer_identity};
pub use role::{ROLE_URI_PREFIX, Role};
pub use tls::{client_config, crypto_provider, server_config};

/// Re-exported so that users name the same certificate and key types as this crate.
pub use rustls::pki_types;
