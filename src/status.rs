//! `codetta status`, `codetta conflicts` and `codetta repair`: what the cluster looks
//! like, which objects are under conflict names, and settling one.

use anyhow::Context;
use codetta_client::volume_client::ClientStatus;
use codetta_cluster::admin::{self, AdminConfig};
use codetta_wire::Request;
use codetta_wire::message::{ReplyBody, ServerStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One server's answer, or why there was none.
#[derive(Serialize)]
struct ServerReport {
    name: String,
    addr: String,
    reachable: bool,
    error: Option<String>,
    status: Option<ServerStatus>,
}

/// One volume across its replicas.
#[derive(Serialize)]
struct VolumeReport {
    name: String,
    id: u32,
    replicas: Vec<String>,
    /// Replicas every reachable peer has caught up with.
    in_sync: Vec<String>,
    /// Change entries peers have not settled yet (objects awaiting resolution).
    awaiting_resolution: u64,
    conflicts: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    servers: Vec<ServerReport>,
    volumes: Vec<VolumeReport>,
    client: Option<ClientStatus>,
    bytes_shipped_by_resolution: u64,
}

async fn ask(config: &AdminConfig, name: &str, addr: std::net::SocketAddr) -> ServerReport {
    let mut one = config.clone();
    one.server_name = name.to_string();
    one.server_addr = addr;
    match admin::call(&one, &Request::Status).await {
        Ok(ReplyBody::Status(s)) => ServerReport {
            name: name.to_string(),
            addr: addr.to_string(),
            reachable: true,
            error: None,
            status: Some(s),
        },
        Ok(other) => ServerReport {
            name: name.to_string(),
            addr: addr.to_string(),
            reachable: true,
            error: Some(format!("unexpected reply {other:?}")),
            status: None,
        },
        Err(e) => ServerReport {
            name: name.to_string(),
            addr: addr.to_string(),
            reachable: false,
            error: Some(format!("{e:#}")),
            status: None,
        },
    }
}

async fn gather(config: &AdminConfig) -> Report {
    let mut servers = Vec::new();
    let list: Vec<(String, std::net::SocketAddr)> = if config.servers.is_empty() {
        vec![(config.server_name.clone(), config.server_addr)]
    } else {
        config
            .servers
            .iter()
            .map(|s| (s.name.clone(), s.addr))
            .collect()
    };
    for (name, addr) in list {
        servers.push(ask(config, &name, addr).await);
    }
    // Volumes: the union of what the servers report, with each replica's change number and
    // every peer's cursor into it.
    let mut volumes: BTreeMap<u32, VolumeReport> = BTreeMap::new();
    let mut last_change: BTreeMap<(u32, String), u64> = BTreeMap::new();
    let mut cursors: BTreeMap<(u32, String), Vec<u64>> = BTreeMap::new();
    let mut shipped = 0;
    for s in servers.iter().filter_map(|s| s.status.as_ref()) {
        shipped += s.resolution.bytes_shipped;
        for v in &s.volumes {
            let report = volumes.entry(v.info.id.0).or_insert_with(|| VolumeReport {
                name: v.info.name.clone(),
                id: v.info.id.0,
                replicas: v.info.vsg.iter().map(|m| m.server.clone()).collect(),
                in_sync: Vec::new(),
                awaiting_resolution: 0,
                conflicts: Vec::new(),
            });
            if report.conflicts.is_empty() {
                report.conflicts = v.conflicts.iter().map(|c| c.path.clone()).collect();
            }
            last_change.insert((v.info.id.0, s.server.clone()), v.changes);
            for (peer, cursor) in &v.cursors {
                cursors
                    .entry((v.info.id.0, peer.clone()))
                    .or_default()
                    .push(*cursor);
            }
        }
    }
    for ((vol, server), last) in &last_change {
        let seen = cursors
            .get(&(*vol, server.clone()))
            .cloned()
            .unwrap_or_default();
        let behind: u64 = seen.iter().map(|c| last.saturating_sub(*c)).sum();
        if let Some(report) = volumes.get_mut(vol) {
            report.awaiting_resolution += behind;
            let peers = report.replicas.len().saturating_sub(1);
            if behind == 0 && seen.len() == peers {
                report.in_sync.push(server.clone());
            }
        }
    }
    let client = config.client_dir.as_ref().and_then(|d| {
        let text = std::fs::read(d.join("status.json")).ok()?;
        serde_json::from_slice(&text).ok()
    });
    Report {
        servers,
        volumes: volumes.into_values().collect(),
        client,
        bytes_shipped_by_resolution: shipped,
    }
}

fn load(admin_path: Option<PathBuf>) -> anyhow::Result<AdminConfig> {
    admin::load(&admin_path.unwrap_or_else(admin::default_admin_path))
}

/// `codetta status [--json]`.
pub(crate) async fn status(admin_path: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let config = load(admin_path)?;
    let r = gather(&config).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("servers:");
    for s in &r.servers {
        match &s.status {
            Some(st) => println!(
                "  {:<6} {:<21} up    {} objects, {:.1} MiB stored; resolution: {} objects, {} installs, {} conflicts, {:.1} MiB shipped",
                s.name,
                s.addr,
                st.space.files,
                st.space.used_bytes as f64 / 1048576.0,
                st.resolution.objects,
                st.resolution.installs,
                st.resolution.conflicts,
                st.resolution.bytes_shipped as f64 / 1048576.0
            ),
            None => println!(
                "  {:<6} {:<21} DOWN  {}",
                s.name,
                s.addr,
                s.error.as_deref().unwrap_or("")
            ),
        }
    }
    println!("volumes:");
    for v in &r.volumes {
        let state = if v.in_sync.len() == v.replicas.len() {
            "in sync".to_string()
        } else {
            format!(
                "in sync: {}",
                if v.in_sync.is_empty() {
                    "none known".into()
                } else {
                    v.in_sync.join(", ")
                }
            )
        };
        println!(
            "  {} (id {}): replicas {}; {}; {} changes awaiting resolution; {} open conflicts",
            v.name,
            v.id,
            v.replicas.join(", "),
            state,
            v.awaiting_resolution,
            v.conflicts.len()
        );
        for c in &v.conflicts {
            println!("      {c}");
        }
    }
    match &r.client {
        Some(c) => {
            let avsg: Vec<&str> = c
                .servers
                .iter()
                .filter(|(_, up)| *up)
                .map(|(n, _)| n.as_str())
                .collect();
            println!(
                "client: volume {}, AVSG {} of {} ({}), log backlog {} records / {:.1} MiB, {} divergent answers, cache {} hits / {} misses",
                c.volume,
                avsg.len(),
                c.servers.len(),
                avsg.join(", "),
                c.backlog_records,
                c.backlog_bytes as f64 / 1048576.0,
                c.divergent,
                c.cache_hits,
                c.cache_misses
            );
        }
        None => println!("client: no status file (is the client daemon running?)"),
    }
    println!(
        "bytes shipped by resolution since the servers started: {:.1} MiB",
        r.bytes_shipped_by_resolution as f64 / 1048576.0
    );
    Ok(())
}

/// `codetta conflicts`: every object under a conflict name, by volume.
pub(crate) async fn conflicts(admin_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(admin_path)?;
    let r = gather(&config).await;
    anyhow::ensure!(
        r.servers.iter().any(|s| s.status.is_some()),
        "no server answered"
    );
    let mut any = false;
    for v in &r.volumes {
        for c in &v.conflicts {
            any = true;
            println!("{}:{c}", v.name);
        }
    }
    if !any {
        println!("no conflicts");
    }
    Ok(())
}

/// `codetta repair PATH --keep VERSION` through the client daemon's NFS endpoint.
pub(crate) async fn repair(path: String, keep: String, nfs_port: u16) -> anyhow::Result<()> {
    let mut nfs = codetta_bench::nfs::Nfs::connect_as_root(nfs_port)
        .await
        .with_context(|| format!("connecting to the NFS endpoint on 127.0.0.1:{nfs_port}"))?;
    let done = codetta_bench::repair::repair(&mut nfs, &path, &keep).await?;
    println!("{path}: kept {}", done.kept);
    for r in &done.removed {
        println!("  removed {r}");
    }
    Ok(())
}
