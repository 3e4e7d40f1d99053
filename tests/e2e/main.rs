//! End-to-end tests: real servers and client daemons on loopback QUIC, driven through the
//! real NFSv3 endpoint by a userspace NFS client.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

mod bench;
mod big_dir;
mod callbacks;
mod catalogue;
mod deployment;
mod durability;
mod faults;
mod groups;
mod heavy;
mod large;
mod local_port;
mod mounts;
mod nfs_ops;
mod nospc;
mod own_updates;
mod partition;
mod permissions;
mod replication;
mod restart;
mod restart_reads;
mod up;
