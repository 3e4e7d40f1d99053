//! Bytes as the catalogue reads them from another server (proposed changes, membership
//! changes, Raft messages) or from its own file (log entries, votes, the state machine).
//! Never a panic; changes, memberships and states round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    codetta_server::fuzzing::catalogue_bodies(bytes);
});
