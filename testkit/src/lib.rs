//! Test support shared by Codetta's crates (a dev-dependency only): [`CrashDisk`], a redb
//! storage backend that fails at a chosen I/O and loses power, for the crash tests of the
//! server store and the client's modify log; and the record of a worker's directory
//! ([`dir_model`]) with the rules its read-back must meet ([`dir_check`]), shared by the
//! end-to-end fault matrix and the interleaving simulation.

pub mod crash_disk;
pub mod dir_check;
pub mod dir_model;
pub mod dir_plan;
pub mod shared_files;

pub use crash_disk::CrashDisk;
