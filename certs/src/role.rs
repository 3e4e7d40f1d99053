//! What a peer is allowed to be.

use crate::CertError;
use std::fmt;
use std::str::FromStr;

/// The URI SAN prefix that carries the role: `codetta:role:server` and so on.
pub const ROLE_URI_PREFIX: &str = "codetta:role:";

/// What a certificate says its holder is. Servers refuse peer-only and admin calls from the
/// wrong role, so this must come from the CA-signed certificate, never from the peer's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A replica server; may also dial other servers.
    Server,
    /// A client daemon.
    Client,
    /// An operator tool.
    Admin,
}

impl Role {
    /// The lowercase name used on the command line and in the certificate.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    /// The URI SAN encoding this role.
    pub fn uri(self) -> String {
        format!("{ROLE_URI_PREFIX}{}", self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = CertError;

    fn from_str(s: &str) -> Result<Role, CertError> {
        match s {
            "server" => Ok(Role::Server),
            "client" => Ok(Role::Client),
            "admin" => Ok(Role::Admin),
            other => Err(CertError::UnknownRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for role in [Role::Server, Role::Client, Role::Admin] {
            assert_eq!(role.to_string().parse::<Role>().ok(), Some(role));
        }
        assert!(matches!(
            "Server".parse::<Role>(),
            Err(CertError::UnknownRole(_))
        ));
    }
}
