//! Local Codetta clusters: the directory layout `codetta up` creates (CA, certificates,
//! configurations), admin calls made with the admin certificate, and a cluster run as tasks
//! of the current process (used by `codetta up`, the end-to-end tests and the bench).

pub mod admin;
pub mod inspect;
pub mod layout;
pub mod local;
pub mod procs;

pub use admin::AdminConfig;
pub use inspect::{Answer, Inspector};
pub use layout::{Layout, ServerLayout, default_dir, free_port};
pub use local::LocalCluster;
pub use procs::{Proc, ProcCluster, ServerProcs};
