//! `codetta up`: a whole local cluster from one command: N servers as separate processes
//! (so one can be killed and restarted) and the client daemon in this process. The first
//! run creates the CA, the certificates, the configurations and the root volume (a replica
//! on every server) under DIR; later runs serve the same files under the same handles.

use anyhow::Context;
use codetta_client::ClientDaemon;
use codetta_cluster::{Layout, ServerProcs, admin, default_dir};
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct UpArgs {
    /// Where the cluster keeps everything (default: $XDG_DATA_HOME/codetta or ~/.local/share/codetta).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Port of the NFSv3 endpoint on 127.0.0.1 (NFS and MOUNT).
    #[arg(long, default_value_t = 12049)]
    nfs_port: u16,
    /// QUIC port of the first server on 127.0.0.1; the others use the following ports.
    #[arg(long, default_value_t = 7410)]
    server_port: u16,
    /// How many servers to run (each holds a replica of the root volume).
    #[arg(long, default_value_t = 3)]
    servers: u16,
    /// Take NFS calls from unprivileged source ports too (libnfs, macOS's client, the
    /// nfs-vm guest). Any local user can then claim any uid, root's included, in the mount.
    #[arg(long)]
    allow_unprivileged_ports: bool,
}

/// Waits for SIGINT or SIGTERM, or, in a process started by another `codetta` (`up`, the
/// tests, the bench: `CODETTA_WITH_PARENT` set), for that process to end.
pub(crate) async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let parent = parent_gone();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = parent => tracing::warn!("the process that started this one ended; stopping"),
    }
    Ok(())
}

/// Resolves once the process that started this one has ended, if it asked to be watched
/// ([`codetta_cluster::procs::WITH_PARENT_ENV`]): standard input is then a pipe whose other
/// end only it holds, and the kernel closes that end when it ends, however it ends. Never
/// resolves otherwise. The read runs on a thread of its own (a blocking read would hold a
/// runtime's shutdown).
pub(crate) async fn parent_gone() {
    let watched =
        std::env::var_os(codetta_cluster::procs::WITH_PARENT_ENV).is_some_and(|v| v == "1");
    if !watched {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = tx.send(());
    });
    let _ = rx.await;
}

pub(crate) async fn run(args: UpArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.servers >= 1, "--servers must be at least 1");
    let dir = args.dir.unwrap_or_else(default_dir);
    let ports: Vec<u16> = (0..args.servers)
        .map(|i| args.server_port.checked_add(i))
        .collect::<Option<_>>()
        .context("server ports past 65535")?;
    let layout = Layout::prepare(&dir, &ports, args.nfs_port, !args.allow_unprivileged_ports)?;
    let binary = std::env::current_exe().context("finding the codetta executable")?;
    let mut servers = ServerProcs::new(&binary, &layout);
    servers.start_all().await?;
    let root = admin::ensure_volume(&layout.admin, "root", &layout.server_names())
        .await
        .context("creating the root volume")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let client = ClientDaemon::start(&layout.client_config()?, stop_rx).await?;
    let port = layout.nfs_port;
    println!(
        "Codetta is up: {} servers (processes {}), root volume on {} of them, client daemon serving NFSv3 on 127.0.0.1:{port}",
        layout.servers.len(),
        (0..layout.servers.len())
            .filter_map(|i| servers.pid(i).map(|p| p.to_string()))
            .collect::<Vec<_>>()
            .join(", "),
        root.vsg.len(),
    );
    println!(
        "cluster directory: {} (server logs: s1.log, ...)",
        dir.display()
    );
    println!(
        "Linux: sudo mkdir -p /mnt/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolock,hard 127.0.0.1:/ /mnt/codetta"
    );
    println!(
        "macOS: mkdir -p ~/codetta && sudo mount -t nfs -o vers=3,tcp,port={port},mountport={port},nolocks,locallocks 127.0.0.1:/ ~/codetta"
    );
    if args.allow_unprivileged_ports {
        println!(
            "NFS calls are taken from any source port (--allow-unprivileged-ports): any local user can act as any uid in the mount"
        );
    } else {
        println!(
            "NFS calls are taken only from privileged source ports (the kernel's client, run as root); --allow-unprivileged-ports for libnfs and other user-space clients"
        );
    }
    println!("Stop with Ctrl-C (unmount first).");
    wait_for_signal().await?;
    println!("stopping");
    let _ = stop_tx.send(true);
    client.stop().await;
    servers.stop_all();
    Ok(())
}
