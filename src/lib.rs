//! The `codetta` command's library half: the local-cluster layout used by `codetta up` (and
//! by the end-to-end tests) and the admin calls.

pub mod admin;
pub mod up;
