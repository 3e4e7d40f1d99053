//! The client daemon's own NFS front end (issues 20 and 22), being built to replace
//! nfs3_server: so far its connection handling ([`port`]), with every bound a local peer
//! could push against built in. It does not serve the mount yet: NFSv3 and MOUNT dispatch
//! come next, and nfs3_server serves until then.

pub mod port;
