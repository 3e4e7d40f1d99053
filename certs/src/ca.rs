//! Creating the cluster CA and issuing node certificates.

use crate::{CertError, Role};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

/// The CA certificate's file name inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key's file name inside the CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// How long a node certificate is valid unless told otherwise: two years.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// How long the cluster CA is valid: ten years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start this far in the past, so that a peer whose clock is a little behind
/// still accepts a certificate issued a moment ago.
const BACKDATE: Duration = Duration::from_secs(300);
const CA_COMMON_NAME: &str = "Codetta cluster CA";

/// Where [`issue`] wrote a node's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Checks a node name: 1-63 characters of `[a-z0-9-]`, starting with a letter and not ending
/// with `-`. Such a name is one valid DNS label that is never mistaken for a number or an IP
/// address, so it can be both the certificate's DNS SAN and the TLS server name.
pub fn validate_name(name: &str) -> Result<(), CertError> {
    let bad = |reason| {
        Err(CertError::BadName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 63 {
        return bad("must be 1 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only lowercase letters, digits and '-' are allowed");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a letter");
    }
    if name.ends_with('-') {
        return bad("must not end with '-'");
    }
    Ok(())
}

/// Creates the cluster CA (ECDSA P-256) in `dir`: [`CA_CERT_FILE`] and [`CA_KEY_FILE`]
/// (mode 0600). Refuses to touch an existing CA: replacing it would orphan every issued
/// certificate.
pub fn init_ca(dir: &Path) -> Result<(), CertError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    refuse_existing(&[&cert_path, &key_path])?;
    fs::create_dir_all(dir).map_err(CertError::io(dir))?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity_window(CA_VALIDITY)?;
    let cert = params.self_signed(&key)?;

    write_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
    tracing::info!(dir = %dir.display(), "created cluster CA");
    Ok(())
}

/// Issues a node certificate valid for [`DEFAULT_VALIDITY`]; see [`issue_with_validity`].
pub fn issue(
    ca_dir: &Path,
    role: Role,
    name: &str,
    out_dir: &Path,
) -> Result<NodeFiles, CertError> {
    issue_with_validity(ca_dir, role, name, out_dir, DEFAULT_VALIDITY)
}

/// Generates a fresh key pair on this machine and a certificate for it signed by the CA in
/// `ca_dir`, carrying `name` (CN and DNS SAN) and `role` (URI SAN and key usages; see the crate
/// docs). Writes `out_dir/<name>.pem` and `out_dir/<name>.key` (mode 0600); refuses to
/// overwrite either.
pub fn issue_with_validity(
    ca_dir: &Path,
    role: Role,
    name: &str,
    out_dir: &Path,
    validity: Duration,
) -> Result<NodeFiles, CertError> {
    validate_name(name)?;
    let files = NodeFiles {
        cert: out_dir.join(format!("{name}.pem")),
        key: out_dir.join(format!("{name}.key")),
    };
    refuse_existing(&[&files.cert, &files.key])?;

    let ca_cert_path = ca_dir.join(CA_CERT_FILE);
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_cert_pem = fs::read_to_string(&ca_cert_path).map_err(CertError::io(&ca_cert_path))?;
    let ca_key_pem = fs::read_to_string(&ca_key_path).map_err(CertError::io(&ca_key_path))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, KeyPair::from_pem(&ca_key_pem)?)?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(name);
    params.subject_alt_names = vec![
        SanType::DnsName(Ia5String::try_from(name)?),
        SanType::URI(Ia5String::try_from(role.uri())?),
    ];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match role {
        Role::Server => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Role::Client | Role::Admin => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity_window(validity)?;
    let cert = params.signed_by(&key, &issuer)?;

    fs::create_dir_all(out_dir).map_err(CertError::io(out_dir))?;
    write_pair(&files.cert, &cert.pem(), &files.key, &key.serialize_pem())?;
    tracing::info!(%role, name, cert = %files.cert.display(), "issued node certificate");
    Ok(files)
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity_window(validity: Duration) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    let now = OffsetDateTime::now_utc();
    let back = time::Duration::try_from(BACKDATE).map_err(|_| CertError::Validity)?;
    let forward = time::Duration::try_from(validity).map_err(|_| CertError::Validity)?;
    if validity.is_zero() {
        return Err(CertError::Validity);
    }
    let not_before = now.checked_sub(back).ok_or(CertError::Validity)?;
    let not_after = now.checked_add(forward).ok_or(CertError::Validity)?;
    Ok((not_before, not_after))
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CertError> {
    for path in paths {
        match fs::symlink_metadata(path) {
            Ok(_) => return Err(CertError::AlreadyExists(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CertError::io(*path)(e)),
        }
    }
    Ok(())
}

/// Writes the key (0600) then the certificate, both with `create_new` so that a file appearing
/// meanwhile is not overwritten; a half-written pair is removed.
fn write_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<(), CertError> {
    write_new(key_path, key_pem, 0o600)?;
    if let Err(e) = write_new(cert_path, cert_pem, 0o644) {
        let _ = fs::remove_file(key_path);
        return Err(e);
    }
    Ok(())
}

fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), CertError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CertError::AlreadyExists(path.to_path_buf())
        } else {
            CertError::io(path)(e)
        }
    })?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(CertError::io(path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "server-1", "c0", &"x".repeat(63)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            &"x".repeat(64),
            "Server",
            "a.b",
            "a_b",
            "1abc",
            "-a",
            "a-",
            "a b",
            "é",
        ] {
            assert!(
                matches!(validate_name(bad), Err(CertError::BadName { .. })),
                "{bad}"
            );
        }
    }
}
