//! rustls configurations for QUIC with mutual TLS against the cluster CA.

use crate::{CertError, Identity};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

/// aws-lc-rs with only the TLS 1.3 suites, AES-128-GCM first: on this hardware ChaCha20 costs
/// 40-100% more CPU per byte, and QUIC's initial packets need AES-128-GCM anyway.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    use aws_lc_rs::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..aws_lc_rs::default_provider()
    })
}

fn cluster_roots(identity: &Identity) -> Result<Arc<RootCertStore>, CertError> {
    let mut roots = RootCertStore::empty();
    roots.add(identity.ca().clone())?;
    Ok(Arc::new(roots))
}

/// A TLS 1.3 server configuration that **requires** a client certificate signed by the cluster
/// CA and presents our chain. The caller still reads the peer's role (see
/// [`crate::peer_identity`]) before serving it.
pub fn server_config(identity: &Identity) -> Result<ServerConfig, CertError> {
    let provider = crypto_provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(cluster_roots(identity)?, provider.clone())
            .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain().to_vec(), identity.key().clone_key())?;
    config.alpn_protocols = vec![codetta_wire::ALPN.to_vec()];
    // Our suite order, not the client's: keeps AES-128-GCM even for a differently ordered peer.
    config.ignore_client_order = true;
    Ok(config)
}

/// A TLS 1.3 client configuration trusting only the cluster CA and authenticating with our
/// chain. Dial servers with their node name as the server name: that is their DNS SAN.
pub fn client_config(identity: &Identity) -> Result<ClientConfig, CertError> {
    let mut config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(cluster_roots(identity)?)
        .with_client_auth_cert(identity.chain().to_vec(), identity.key().clone_key())?;
    config.alpn_protocols = vec![codetta_wire::ALPN.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_comes_first_and_only_tls13_suites_are_offered() {
        let provider = crypto_provider();
        assert_eq!(
            provider.cipher_suites.first().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        assert!(provider.cipher_suites.iter().all(|s| s.tls13().is_some()));
    }
}
