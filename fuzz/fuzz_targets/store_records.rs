//! Bytes as the server store would read them back from a damaged or foreign database file:
//! every persisted record type decoded. Never a panic; what decodes re-encodes to a value
//! that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    codetta_server::fuzzing::store_records(bytes);
});
