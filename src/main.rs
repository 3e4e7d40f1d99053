//! `codetta`: one binary for servers, the client daemon, administration and the local demo.

use anyhow::Context;
use clap::{Parser, Subcommand};
mod bench;
mod cluster;
mod mkmount;
mod status;
mod up;
mod volume;

use codetta_certs::Role;
use std::path::PathBuf;

/// Makes glibc's allocator reuse large buffers. By default it serves every allocation of
/// 128 KiB or more (the 1 MiB WRITE and READ payloads) with a fresh mmap, so each one costs
/// page faults and the kernel zeroing its pages; here buffers up to 32 MiB come from its
/// arenas, free memory above 64 MiB per arena goes back, and there are as many arenas as
/// cores (glibc's default of 8 per core let a server's resident memory creep up run after
/// run). mimalloc saved as much CPU but kept ~950 MiB resident per server under a long
/// write; with this a server stays near 200 MiB.
#[allow(unsafe_code)]
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = i32::try_from(cores.max(2)).unwrap_or(2);
        // SAFETY: mallopt only sets allocator parameters; called before any other thread
        // runs.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        }
    }
}

#[derive(Parser)]
#[command(
    name = "codetta",
    version,
    about = "A replicated network filesystem served over NFSv3"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster (server + client daemon) and print the mount command.
    Up(up::UpArgs),
    /// Run a server (Coda's Vice).
    Server {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the client daemon (Coda's Venus) with its NFSv3 endpoint.
    Client {
        #[arg(long)]
        config: PathBuf,
    },
    /// Cluster certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Servers, volumes (in sync or not), conflicts, the client's log backlog.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Admin configuration (CA, admin certificate, servers).
        #[arg(long)]
        admin: Option<PathBuf>,
    },
    /// Objects under conflict names (versions that were updated concurrently).
    Conflicts {
        #[arg(long)]
        admin: Option<PathBuf>,
    },
    /// Settles a conflict: keep one version under the name, remove the others.
    Repair {
        /// The object's path from the export root, without a conflict suffix.
        path: String,
        /// `current`, or the suffix of the version to keep (`conflict-1a2b3c4d`).
        #[arg(long)]
        keep: String,
        /// The client daemon's NFS port on 127.0.0.1.
        #[arg(long, default_value_t = 12049)]
        nfs_port: u16,
    },
    /// Make a mount point: PATH shows the root of VOLUME (Coda's `cfs mkm`).
    Mkmount {
        /// Where: a path on this machine's mounted Codetta file system, or with
        /// --nfs-port a path from the export's root.
        path: String,
        volume: String,
        /// Make it through the client daemon's NFS endpoint on 127.0.0.1:PORT (no mount
        /// needed).
        #[arg(long)]
        nfs_port: Option<u16>,
        /// Admin configuration (to check that the volume exists).
        #[arg(long)]
        admin: Option<PathBuf>,
    },
    /// Measure Codetta beside baselines (local disk, the NFS layer alone, other NFS
    /// endpoints) and print tables, a JSON file and an SVG chart.
    Bench(bench::BenchArgs),
    /// The NFS layer alone (nfs3_server's in-memory file system), for the bench.
    #[command(hide = true)]
    BenchMemfs {
        #[arg(long)]
        port: u16,
    },
    /// Codetta's NFS front end over a file system in memory, for the bench.
    #[command(hide = true)]
    BenchFront {
        #[arg(long)]
        port: u16,
    },
    /// Servers joining and leaving, certificate revocation.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
        /// Admin configuration (CA, admin certificate, server address).
        #[arg(long, global = true)]
        admin: Option<PathBuf>,
    },
    /// Volumes.
    Volume {
        #[command(subcommand)]
        command: volume::VolumeCommand,
        /// Admin configuration (CA, admin certificate, server address).
        #[arg(long, global = true)]
        admin: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create the cluster CA in DIR (ca.pem, ca.key).
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node certificate signed by the CA in DIR; the key is generated here.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: String,
        /// Where to write NAME.pem and NAME.key (default: DIR).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a certificate's fingerprint (what `cluster revoke` names).
    Fingerprint { cert: PathBuf },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CODETTA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Server { config } => {
            let config = codetta_server::ServerConfig::load(&config)?;
            let server = codetta_server::ServerDaemon::start(&config).await?;
            up::wait_for_signal().await?;
            server.stop().await;
            Ok(())
        }
        Command::Client { config } => {
            let config = codetta_client::ClientConfig::load(&config)?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let start = codetta_client::ClientDaemon::start(&config, stop_rx);
            let client = tokio::select! {
                client = start => client?,
                signal = up::wait_for_signal() => { signal?; let _ = stop_tx.send(true); return Ok(()); }
            };
            println!("NFS endpoint on {}", client.nfs_addr);
            up::wait_for_signal().await?;
            let _ = stop_tx.send(true);
            client.stop().await;
            Ok(())
        }
        Command::Certs { command } => match command {
            CertsCommand::Init { dir } => {
                codetta_certs::init_ca(&dir)?;
                println!("cluster CA written to {}", dir.display());
                Ok(())
            }
            CertsCommand::Issue {
                dir,
                role,
                name,
                out,
            } => {
                let out = out.unwrap_or_else(|| dir.clone());
                let files = codetta_certs::issue(&dir, role, &name, &out)?;
                println!(
                    "{role} certificate {} and key {}",
                    files.cert.display(),
                    files.key.display()
                );
                Ok(())
            }
            CertsCommand::Fingerprint { cert } => {
                println!("{}", codetta_certs::certificate_fingerprint(&cert)?);
                Ok(())
            }
        },
        Command::Volume { command, admin } => volume::run(command, admin).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BenchMemfs { port } => tokio::select! {
            served = codetta_bench::systems::serve_memfs(port) => served,
            _ = up::parent_gone() => Ok(()),
        },
        Command::BenchFront { port } => tokio::select! {
            served = codetta_bench::front_alone::serve_front_alone(port) => served,
            _ = up::parent_gone() => Ok(()),
        },
        Command::Cluster { command, admin } => cluster::run(command, admin).await,
        Command::Mkmount {
            path,
            volume,
            nfs_port,
            admin,
        } => mkmount::run(&path, &volume, nfs_port, admin).await,
        Command::Status { json, admin } => status::status(admin, json).await,
        Command::Conflicts { admin } => status::conflicts(admin).await,
        Command::Repair {
            path,
            keep,
            nfs_port,
        } => status::repair(path, keep, nfs_port).await,
    }
}
