//! Servers run as separate `codetta server` processes (so that one can be killed), as
//! `codetta up` and the fault tests run them.

use crate::layout::Layout;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Set in a child's environment: its standard input is a pipe from the process that
/// started it, which it watches so as to end when that process ends, however it ends
/// (see [`Proc::spawn`]).
pub const WITH_PARENT_ENV: &str = "CODETTA_WITH_PARENT";

/// A `codetta` child process, killed when dropped, and ended by the kernel's closing of
/// its pipe when this process dies without dropping it (SIGKILL included).
pub struct Proc {
    child: Child,
    /// The writing end of the child's standard input: never written, closed when this
    /// process ends.
    _lifeline: Option<std::process::ChildStdin>,
}

impl Proc {
    /// Starts `binary args...` with stderr (its log) appended to `log`, and standard input
    /// a pipe the child watches (`CODETTA_WITH_PARENT=1`): when this process ends, however
    /// it ends, the pipe closes and the child stops as it would on SIGTERM.
    pub fn spawn(binary: &Path, args: &[&str], log: &Path) -> anyhow::Result<Proc> {
        Self::spawn_with_env(binary, args, &[], log)
    }

    /// [`Proc::spawn`] with `env` added to the child's environment (the fault tests run
    /// a server under a preloaded clock this way).
    pub fn spawn_with_env(
        binary: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Proc> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new(binary)
            .args(args)
            .env(
                "CODETTA_LOG",
                std::env::var("CODETTA_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env(WITH_PARENT_ENV, "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let lifeline = child.stdin.take();
        Ok(Proc {
            child,
            _lifeline: lifeline,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `grace` before SIGKILL.
    pub fn terminate(&mut self, grace: Duration) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            return self.kill();
        };
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap_or(rustix::process::Pid::INIT),
            rustix::process::Signal::TERM,
        );
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The servers of a [`Layout`], each its own process.
pub struct ServerProcs {
    binary: PathBuf,
    layout: Layout,
    procs: Vec<Option<Proc>>,
    /// Extra environment per server, for its next start.
    envs: Vec<Vec<(String, String)>>,
}

impl ServerProcs {
    /// Servers of `layout` run by `binary` (the `codetta` executable); none started yet.
    pub fn new(binary: &Path, layout: &Layout) -> ServerProcs {
        ServerProcs {
            binary: binary.to_path_buf(),
            layout: layout.clone(),
            procs: layout.servers.iter().map(|_| None).collect(),
            envs: layout.servers.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// Sets the extra environment server `i` starts with from its next start on.
    pub fn set_env(&mut self, i: usize, env: Vec<(String, String)>) {
        if let Some(e) = self.envs.get_mut(i) {
            *e = env;
        }
    }

    /// Whether server `i` is running (started and not yet killed or stopped).
    pub fn running(&self, i: usize) -> bool {
        self.procs.get(i).is_some_and(Option::is_some)
    }

    /// The log file of server `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.layout
            .dir
            .join(format!("{}.log", self.layout.servers[i].name))
    }

    /// Starts server `i` and waits until its QUIC port is bound.
    pub async fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let s = self
            .layout
            .servers
            .get(i)
            .with_context(|| format!("no server {i}"))?;
        let toml = s.toml.display().to_string();
        let proc = Proc::spawn_with_env(
            &self.binary,
            &["server", "--config", &toml],
            &self.envs[i],
            &self.log_path(i),
        )?;
        self.procs[i] = Some(proc);
        let port = s.port;
        for _ in 0..200 {
            // The server is up once its UDP port is taken.
            if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
                return Ok(());
            }
            if self.procs[i].as_mut().is_some_and(Proc::exited) {
                let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                anyhow::bail!(
                    "server {} exited at start; the end of {}:\n{}",
                    s.name,
                    self.log_path(i).display(),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("server {} did not bind port {port}", s.name)
    }

    /// Starts every server.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.procs.len() {
            self.start(i).await?;
        }
        Ok(())
    }

    /// SIGKILLs server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs.get_mut(i).and_then(Option::take) {
            p.kill();
        }
    }

    /// Stops server `i` with SIGTERM (SIGKILL after 5 s).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut p) = self.procs.get_mut(i).and_then(Option::take) {
            p.terminate(Duration::from_secs(5));
        }
    }

    /// Stops every server.
    pub fn stop_all(&mut self) {
        for i in 0..self.procs.len() {
            self.stop(i);
        }
    }

    /// The process id of server `i`, if running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.procs.get(i)?.as_ref().map(Proc::pid)
    }
}

/// A whole cluster as processes: `n` servers holding replicas of the root volume and a
/// client daemon serving NFS, as the fault tests and the bench harness run it.
pub struct ProcCluster {
    pub layout: Layout,
    pub servers: ServerProcs,
    binary: PathBuf,
    client: Option<Proc>,
}

impl ProcCluster {
    /// Prepares `dir` for `n` servers on free ports (with `settings` lines added to every
    /// server's configuration), starts them, creates the root volume on all of them and
    /// starts the client daemon.
    pub async fn start(
        binary: &Path,
        dir: &Path,
        n: usize,
        settings: &[&str],
    ) -> anyhow::Result<ProcCluster> {
        Self::start_with_client(binary, dir, n, settings, &[]).await
    }

    /// [`ProcCluster::start`], with `client_settings` lines added to the client's
    /// configuration.
    pub async fn start_with_client(
        binary: &Path,
        dir: &Path,
        n: usize,
        settings: &[&str],
        client_settings: &[&str],
    ) -> anyhow::Result<ProcCluster> {
        let layout = Layout::prepare_on_free_ports(dir, n)?;
        for line in settings {
            for i in 0..n {
                layout.add_server_setting(i, line)?;
            }
        }
        for line in client_settings {
            layout.add_client_setting(line)?;
        }
        let servers = ServerProcs::new(binary, &layout);
        let mut cluster = ProcCluster {
            layout,
            servers,
            binary: binary.to_path_buf(),
            client: None,
        };
        cluster.servers.start_all().await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let names = cluster.layout.server_names();
            match crate::admin::ensure_volume(&cluster.layout.admin, "root", &names).await {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(e.context("creating the root volume"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        cluster.start_client().await?;
        Ok(cluster)
    }

    /// Starts the client daemon and waits until its NFS port accepts connections.
    pub async fn start_client(&mut self) -> anyhow::Result<()> {
        let config = self.layout.client_toml.display().to_string();
        let log = self.layout.dir.join("client.log");
        self.client = Some(Proc::spawn(
            &self.binary,
            &["client", "--config", &config],
            &log,
        )?);
        let port = self.layout.nfs_port;
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if self.client.as_mut().is_some_and(Proc::exited) {
                anyhow::bail!("the client daemon exited at start; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the client daemon did not listen on port {port}")
    }

    /// SIGKILLs the client daemon.
    pub fn kill_client(&mut self) {
        if let Some(mut c) = self.client.take() {
            c.kill();
        }
    }

    /// The client daemon's process id, if running.
    pub fn client_pid(&self) -> Option<u32> {
        self.client.as_ref().map(Proc::pid)
    }

    /// Whether the client daemon's process has ended (true when none was started).
    pub fn client_exited(&mut self) -> bool {
        self.client.as_mut().is_none_or(Proc::exited)
    }

    /// Stops the client daemon, then every server (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.client.take() {
            c.terminate(Duration::from_secs(5));
        }
        self.servers.stop_all();
    }
}
