//! The one error type of this crate.

use std::path::PathBuf;
use thiserror::Error;

/// Why a certificate operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} already exists; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    #[error("invalid node name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("unknown role {0:?} (expected server, client or admin)")]
    UnknownRole(String),
    #[error("the certificate carries no codetta role")]
    NoRole,
    #[error("the certificate carries more than one codetta role")]
    MultipleRoles,
    #[error("the certificate has no common name")]
    NoName,
    #[error("validity period out of range")]
    Validity,
    #[error("{path}: no {what} found in the PEM file")]
    PemMissing { path: PathBuf, what: &'static str },
    #[error("{path}: bad PEM: {source}")]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("unparsable certificate: {0}")]
    X509(#[from] x509_parser::error::X509Error),
    #[error("{0} trailing bytes after the certificate")]
    TrailingBytes(usize),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl CertError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CertError {
        let path = path.into();
        move |source| CertError::Io { path, source }
    }
}
