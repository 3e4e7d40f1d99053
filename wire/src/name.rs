//! Directory entry names, validated once at the edge.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest name in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name has no bytes.
    #[error("empty name")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("name longer than {MAX_NAME_LEN} bytes")]
    TooLong,
    /// The name contains `/` or NUL.
    #[error("name contains '/' or NUL")]
    BadByte,
    /// The name is `.` or `..`.
    #[error("'.' and '..' are not entry names")]
    Dot,
}

/// A valid directory entry name: 1..=255 bytes, no `/`, no NUL, not `.` or `..`.
///
/// Deserializing validates too, so a peer cannot smuggle a bad name past the type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct Name(Vec<u8>);

impl Name {
    /// Validates `bytes` as an entry name.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Name, NameError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(NameError::Empty);
        }
        if bytes.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        if bytes.iter().any(|b| *b == b'/' || *b == 0) {
            return Err(NameError::BadByte);
        }
        if bytes == b"." || bytes == b".." {
            return Err(NameError::Dot);
        }
        Ok(Name(bytes))
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The READDIR cookie of this name: 63 bits of its blake3 hash, at least
    /// [`Name::FIRST_COOKIE`].
    ///
    /// Cookies are a pure function of the name, so they are equal on every replica, survive
    /// restarts, and are not disturbed by concurrent inserts. They stay below 2^63 because
    /// the Linux client takes a cookie for a signed directory offset (`telldir`/`seekdir`
    /// fail past it), and above 2 because 0 starts a listing and the front end lists `.`
    /// and `..` under cookies 1 and 2.
    pub fn cookie(&self) -> u64 {
        let hash = blake3::hash(&self.0);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        (u64::from_be_bytes(first) >> 1).max(Self::FIRST_COOKIE)
    }

    /// The smallest cookie of a name.
    pub const FIRST_COOKIE: u64 = 3;
}

impl TryFrom<Vec<u8>> for Name {
    type Error = NameError;
    fn try_from(bytes: Vec<u8>) -> Result<Self, NameError> {
        Name::new(bytes)
    }
}

impl From<Name> for Vec<u8> {
    fn from(name: Name) -> Vec<u8> {
        name.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new("a/b"), Err(NameError::BadByte));
        assert_eq!(Name::new(b"a\0b".to_vec()), Err(NameError::BadByte));
        assert_eq!(Name::new("."), Err(NameError::Dot));
        assert_eq!(Name::new(".."), Err(NameError::Dot));
        assert_eq!(Name::new(vec![b'x'; 256]), Err(NameError::TooLong));
        assert!(Name::new(vec![b'x'; 255]).is_ok());
        assert!(Name::new("...").is_ok());
    }

    #[test]
    fn deserializing_validates() {
        let bad = postcard::to_allocvec(&b"a/b".to_vec()).unwrap_or_default();
        assert!(postcard::from_bytes::<Name>(&bad).is_err());
        let good = postcard::to_allocvec(&b"ab".to_vec()).unwrap_or_default();
        assert_eq!(
            postcard::from_bytes::<Name>(&good).ok(),
            Name::new("ab").ok()
        );
    }

    #[test]
    fn cookies_are_stable_and_between_2_and_2_pow_63() {
        let n = Name::new("hello").unwrap_or_else(|_| unreachable!());
        assert_eq!(n.cookie(), n.clone().cookie());
        for i in 0..10_000 {
            let c = Name::new(format!("f{i}"))
                .unwrap_or_else(|_| unreachable!())
                .cookie();
            assert!((Name::FIRST_COOKIE..1 << 63).contains(&c), "{c}");
        }
    }
}
