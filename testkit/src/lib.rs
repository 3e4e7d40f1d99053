//! Test support shared by Codetta's crates (a dev-dependency only): [`CrashDisk`], a redb
//! storage backend that fails at a chosen I/O and loses power, for the crash tests of the
//! server store and the client's modify log.

pub mod crash_disk;

pub use crash_disk::CrashDisk;
