//! A node's loaded credentials, and reading who a peer is from its certificate.

use crate::{CertError, ROLE_URI_PREFIX, Role, validate_name};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::Path;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// This node's credentials: the cluster CA (the only trust root), our certificate chain and
/// our private key, plus the role and name read from our own certificate.
pub struct Identity {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    role: Role,
    name: String,
}

impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            role: self.role,
            name: self.name.clone(),
        }
    }
}

impl Identity {
    /// Loads PEM files; the first certificate in `cert_pem` is ours and must carry a role.
    pub fn load(ca_pem: &Path, cert_pem: &Path, key_pem: &Path) -> Result<Identity, CertError> {
        let ca = read_certs(ca_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| CertError::PemMissing {
                path: ca_pem.to_path_buf(),
                what: "certificate",
            })?;
        let chain = read_certs(cert_pem)?;
        let Some(leaf) = chain.first() else {
            return Err(CertError::PemMissing {
                path: cert_pem.to_path_buf(),
                what: "certificate",
            });
        };
        let (role, name) = peer_identity(leaf)?;
        let key_bytes = std::fs::read(key_pem).map_err(CertError::io(key_pem))?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|source| match source {
            rustls::pki_types::pem::Error::NoItemsFound => CertError::PemMissing {
                path: key_pem.to_path_buf(),
                what: "private key",
            },
            source => CertError::Pem {
                path: key_pem.to_path_buf(),
                source,
            },
        })?;
        Ok(Identity {
            ca,
            chain,
            key,
            role,
            name,
        })
    }

    /// The cluster CA certificate.
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// Our certificate chain, end-entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The fingerprint of our own certificate (see [`fingerprint`]).
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| fingerprint(c))
            .unwrap_or_default()
    }

    /// Our private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The role our certificate carries.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our node name (certificate CN and DNS SAN).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("role", &self.role)
            .field("name", &self.name)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = std::fs::read(path).map_err(CertError::io(path))?;
    CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::Pem {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads the role and node name from a peer's end-entity certificate (DER).
///
/// Call this only on a certificate the TLS layer has already verified against the cluster CA:
/// this function parses, it does not check signatures. The role is the single
/// `codetta:role:*` URI SAN (none, several or an unknown one is an error); the name is the CN,
/// which must be a valid node name and also appear as a DNS SAN.
pub fn peer_identity(cert_der: &[u8]) -> Result<(Role, String), CertError> {
    let (rest, cert) = X509Certificate::from_der(cert_der).map_err(|e| match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => CertError::X509(e),
        x509_parser::nom::Err::Incomplete(_) => {
            CertError::X509(x509_parser::error::X509Error::InvalidCertificate)
        }
    })?;
    if !rest.is_empty() {
        return Err(CertError::TrailingBytes(rest.len()));
    }
    let name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or(CertError::NoName)?
        .to_owned();
    validate_name(&name)?;

    let sans = cert
        .subject_alternative_name()?
        .map(|ext| ext.value.general_names.as_slice())
        .unwrap_or_default();
    let mut role = None;
    let mut dns_matches = false;
    for san in sans {
        match san {
            GeneralName::URI(uri) => {
                if let Some(value) = uri.strip_prefix(ROLE_URI_PREFIX) {
                    if role.is_some() {
                        return Err(CertError::MultipleRoles);
                    }
                    role = Some(value.parse::<Role>()?);
                }
            }
            GeneralName::DNSName(dns) => dns_matches |= *dns == name,
            _ => {}
        }
    }
    let role = role.ok_or(CertError::NoRole)?;
    if !dns_matches {
        return Err(CertError::BadName {
            name,
            reason: "the common name is not among the certificate's DNS names",
        });
    }
    Ok((role, name))
}

/// A certificate's fingerprint: blake3 of its DER bytes, in hex. Revocation names
/// certificates by it (a rotated certificate of the same name has another).
pub fn fingerprint(der: &[u8]) -> String {
    blake3::hash(der).to_hex().to_string()
}

/// The fingerprint of the (first) certificate in the PEM file `path`.
pub fn certificate_fingerprint(path: &Path) -> Result<String, CertError> {
    let certs = read_certs(path)?;
    let leaf = certs.first().ok_or_else(|| CertError::PemMissing {
        path: path.to_path_buf(),
        what: "certificate",
    })?;
    Ok(fingerprint(leaf))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{CA_CERT_FILE, CA_KEY_FILE, init_ca, issue};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_issue_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let out = dir.path().join("nodes");
        init_ca(&ca_dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ca_dir.join(CA_KEY_FILE)), 0o600);

        for (role, name) in [
            (Role::Server, "srv-1"),
            (Role::Client, "laptop"),
            (Role::Admin, "ops"),
        ] {
            let files = issue(&ca_dir, role, name, &out).unwrap();
            assert_eq!(files.cert, out.join(format!("{name}.pem")));
            assert_eq!(mode(&files.key), 0o600);
            let id = Identity::load(&ca_dir.join(CA_CERT_FILE), &files.cert, &files.key).unwrap();
            assert_eq!(id.role(), role);
            assert_eq!(id.name(), name);
            assert_eq!(id.chain().len(), 1);
            assert_eq!(
                peer_identity(&id.chain()[0]).unwrap(),
                (role, name.to_owned())
            );
            // The configurations build from what was written.
            crate::server_config(&id).unwrap();
            crate::client_config(&id).unwrap();
        }
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        let before = std::fs::read(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            init_ca(dir.path()),
            Err(CertError::AlreadyExists(_))
        ));
        assert_eq!(std::fs::read(dir.path().join(CA_KEY_FILE)).unwrap(), before);

        issue(dir.path(), Role::Client, "c1", dir.path()).unwrap();
        let key = std::fs::read(dir.path().join("c1.key")).unwrap();
        assert!(matches!(
            issue(dir.path(), Role::Server, "c1", dir.path()),
            Err(CertError::AlreadyExists(_))
        ));
        assert_eq!(std::fs::read(dir.path().join("c1.key")).unwrap(), key);
    }

    #[test]
    fn bad_names_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path()).unwrap();
        for bad in ["", "UPPER", "a.b", "../x", "-x"] {
            assert!(matches!(
                issue(dir.path(), Role::Client, bad, dir.path()),
                Err(CertError::BadName { .. })
            ));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn issuing_without_a_ca_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            issue(dir.path(), Role::Client, "c1", dir.path()),
            Err(CertError::Io { .. })
        ));
    }

    #[test]
    fn a_certificate_without_a_role_is_refused() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["node".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "node");
        let cert = params.self_signed(&key).unwrap();
        assert!(matches!(peer_identity(cert.der()), Err(CertError::NoRole)));

        params.subject_alt_names.push(rcgen::SanType::URI(
            "codetta:role:wizard".try_into().unwrap(),
        ));
        let cert = params.self_signed(&key).unwrap();
        assert!(matches!(
            peer_identity(cert.der()),
            Err(CertError::UnknownRole(_))
        ));

        params.subject_alt_names = vec![
            rcgen::SanType::DnsName("node".try_into().unwrap()),
            rcgen::SanType::URI(Role::Admin.uri().try_into().unwrap()),
            rcgen::SanType::URI(Role::Server.uri().try_into().unwrap()),
        ];
        let cert = params.self_signed(&key).unwrap();
        assert!(matches!(
            peer_identity(cert.der()),
            Err(CertError::MultipleRoles)
        ));
        assert!(peer_identity(b"not a certificate").is_err());
    }
}
