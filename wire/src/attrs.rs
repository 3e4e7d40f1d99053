//! File attributes as replicated: every time is assigned by the client in the record.

use serde::{Deserialize, Serialize};

/// A point in time: seconds and nanoseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time {
    /// Whole seconds since the Unix epoch (negative before it).
    pub secs: i64,
    /// Nanoseconds past `secs`.
    pub nanos: u32,
}

impl Time {
    /// The current wall-clock time (client side only: servers never stamp times).
    pub fn now() -> Time {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Time {
            secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: d.subsec_nanos(),
        }
    }

    /// The time `ms` milliseconds after the Unix epoch (a clock read in milliseconds, as
    /// the server's and the simulation's are).
    pub fn from_unix_ms(ms: u64) -> Time {
        Time {
            secs: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            // Below 1000, so the product fits.
            nanos: (ms % 1000) as u32 * 1_000_000,
        }
    }
}

/// The kind of a file-system object. New kinds go at the end: records already stored and
/// sent keep their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileType {
    /// A regular file: bytes in blocks.
    Regular,
    /// A directory: named entries.
    Directory,
    /// A symbolic link: a target path.
    Symlink,
    /// A named pipe: the name is replicated; what flows through it stays in each machine's
    /// kernel.
    Fifo,
    /// The name a UNIX domain socket is bound to (likewise only the name).
    Socket,
    /// A character device node and its device number.
    CharDevice {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
    /// A block device node and its device number.
    BlockDevice {
        /// The device's major number.
        major: u32,
        /// The device's minor number.
        minor: u32,
    },
}

impl FileType {
    /// FIFOs, sockets and device nodes: objects that are only a name and attributes (no
    /// data, no entries, no target), made by MKNOD.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            FileType::Fifo
                | FileType::Socket
                | FileType::CharDevice { .. }
                | FileType::BlockDevice { .. }
        )
    }
}

/// The attributes of an object as every replica stores them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attrs {
    /// The kind of object.
    pub ftype: FileType,
    /// Permission bits (including setuid/setgid/sticky), without the type bits.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Bytes for a file, the target length for a symlink, entries for a directory.
    pub size: u64,
    /// Links: 1 for files and symlinks, 2 + subdirectories for a directory.
    pub nlink: u32,
    /// Last access time.
    pub atime: Time,
    /// Last modification of the data or entries.
    pub mtime: Time,
    /// Last change of the data or attributes.
    pub ctime: Time,
}

/// The attribute changes of a SETATTR; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttrs {
    /// New permission bits (as [`Attrs::mode`]).
    pub mode: Option<u32>,
    /// New owner user id.
    pub uid: Option<u32>,
    /// New owner group id.
    pub gid: Option<u32>,
    /// Truncate or extend (holes read as zeros).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<Time>,
    /// New modification time.
    pub mtime: Option<Time>,
}

impl SetAttrs {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == SetAttrs::default()
    }
}

#[cfg(test)]
mod tests {
    use super::Time;

    #[test]
    fn milliseconds_become_seconds_and_nanoseconds() {
        assert_eq!(
            Time::from_unix_ms(1_800_000_000_123),
            Time {
                secs: 1_800_000_000,
                nanos: 123_000_000
            }
        );
        assert_eq!(Time::from_unix_ms(999).secs, 0);
    }
}
