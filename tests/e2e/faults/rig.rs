//! The cluster the fault matrix runs on: three servers and several client daemons, each its
//! own process (so any can be SIGKILLed), every client-server and server-server path
//! through a UDP proxy the test cuts, each server's wall clock under libfaketime (stepped
//! by writing a file) and its capacity in its configuration (a full disk).

use crate::support::codetta_binary;
use crate::support::proxy::{UdpProxy, proxy_peer_links, route};
use codetta_cluster::{Inspector, Layout, Proc, ServerProcs, admin, free_port};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where Debian's `faketime` package puts the library that fakes the clock.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// One client daemon: its configuration (routed through its proxies) and NFS port.
struct Client {
    toml: PathBuf,
    log: PathBuf,
    port: u16,
    proc: Option<Proc>,
}

/// The running cluster.
pub(crate) struct Rig {
    pub layout: Layout,
    servers: ServerProcs,
    /// `(i, j)`: server i's calls to server j.
    peer_proxies: BTreeMap<(usize, usize), UdpProxy>,
    /// `(c, i)`: client c's calls to server i.
    client_proxies: BTreeMap<(usize, usize), UdpProxy>,
    clients: Vec<Client>,
    clocks: Vec<PathBuf>,
    /// Whether libfaketime is there to step the servers' clocks with.
    pub can_step_clocks: bool,
    /// Each server's configuration as laid out (a full disk rewrites it for a while).
    server_tomls: Vec<String>,
}

/// How many servers the matrix runs.
pub(crate) const SERVERS: usize = 3;

impl Rig {
    /// Lays out and starts three servers holding the root volume and `clients` client
    /// daemons, each daemon reaching each server through its own proxy.
    pub(crate) async fn start(dir: &Path, clients: usize) -> Rig {
        let can_step_clocks = Path::new(FAKETIME_LIB).exists();
        let layout = Layout::prepare_on_free_ports(dir, SERVERS).expect("layout");
        let peer_proxies = proxy_peer_links(&layout).await;
        let mut servers = ServerProcs::new(codetta_binary(), &layout);
        let mut clocks = Vec::new();
        for i in 0..SERVERS {
            let clock = dir.join(format!("clock-{i}"));
            std::fs::write(&clock, "+0\n").expect("clock file");
            if can_step_clocks {
                servers.set_env(i, faketime_env(&clock));
            }
            clocks.push(clock);
        }
        let server_tomls = layout
            .servers
            .iter()
            .map(|s| std::fs::read_to_string(&s.toml).expect("server toml"))
            .collect();
        servers.start_all().await.expect("servers start");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match admin::ensure_volume(&layout.admin, "root", &layout.server_names()).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "creating the root volume: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let mut rig = Rig {
            layout,
            servers,
            peer_proxies,
            client_proxies: BTreeMap::new(),
            clients: Vec::new(),
            clocks,
            can_step_clocks,
            server_tomls,
        };
        for c in 0..clients {
            let mut routes = BTreeMap::new();
            for i in 0..SERVERS {
                let target = rig.layout.servers[i].addr();
                let p = UdpProxy::start(target).await;
                routes.insert(target.to_string(), p.addr.to_string());
                rig.client_proxies.insert((c, i), p);
            }
            let client = rig.client_config(&format!("client{c}"), &routes);
            rig.clients.push(client);
            rig.start_client(c).await;
        }
        rig
    }

    /// Writes a client configuration named `name` (its own cache and NFS port) whose
    /// server addresses go through `routes`.
    fn client_config(&self, name: &str, routes: &BTreeMap<String, String>) -> Client {
        let port = free_port().expect("port");
        let text = std::fs::read_to_string(&self.layout.client_toml).expect("client.toml");
        let text = route(&text, routes)
            .replace(
                &format!("nfs_listen = \"127.0.0.1:{}\"", self.layout.nfs_port),
                &format!("nfs_listen = \"127.0.0.1:{port}\""),
            )
            .replace(
                &format!("{:?}", self.layout.dir.join("client").display().to_string()),
                &format!("{:?}", self.layout.dir.join(name).display().to_string()),
            );
        let toml = self.layout.dir.join(format!("{name}.toml"));
        std::fs::write(&toml, text).expect("write client config");
        Client {
            toml,
            log: self.layout.dir.join(format!("{name}.log")),
            port,
            proc: None,
        }
    }

    /// A client daemon that reaches every server directly, with a cache of its own:
    /// what the checker reads through. Returns its index.
    pub(crate) async fn add_direct_client(&mut self, name: &str) -> usize {
        let client = self.client_config(name, &BTreeMap::new());
        self.clients.push(client);
        let c = self.clients.len() - 1;
        self.start_client(c).await;
        c
    }

    /// The NFS port of client daemon `c`.
    pub(crate) fn nfs_port(&self, c: usize) -> u16 {
        self.clients[c].port
    }

    /// Starts client daemon `c` (if not running) and waits until it serves NFS.
    pub(crate) async fn start_client(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if client.proc.is_some() {
            return;
        }
        let toml = client.toml.display().to_string();
        let proc = Proc::spawn(
            codetta_binary(),
            &["client", "--config", &toml],
            &client.log,
        )
        .expect("spawn client daemon");
        client.proc = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", client.port))
                .await
                .is_ok()
            {
                return;
            }
            let exited = client.proc.as_mut().is_some_and(Proc::exited);
            assert!(
                !exited && Instant::now() < deadline,
                "client daemon {c} did not start serving NFS; see {}",
                client.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs client daemon `c`.
    pub(crate) fn kill_client(&mut self, c: usize) {
        if let Some(mut p) = self.clients[c].proc.take() {
            p.kill();
        }
    }

    /// Stops client daemon `c` with SIGTERM.
    pub(crate) fn stop_client(&mut self, c: usize) {
        if let Some(mut p) = self.clients[c].proc.take() {
            p.terminate(Duration::from_secs(10));
        }
    }

    /// SIGKILLs server `i`.
    pub(crate) fn kill_server(&mut self, i: usize) {
        self.servers.kill(i);
    }

    /// Starts server `i` if it is not running.
    pub(crate) async fn start_server(&mut self, i: usize) {
        if !self.servers.running(i) {
            self.servers.start(i).await.expect("server starts");
        }
    }

    /// Cuts (or heals) the path between client daemon `c` and server `i`.
    pub(crate) fn cut_client(&self, c: usize, i: usize, cut: bool) {
        if let Some(p) = self.client_proxies.get(&(c, i)) {
            p.set_cut(cut);
        }
    }

    /// Cuts (or heals) the paths between servers `i` and `j`, both ways.
    pub(crate) fn cut_servers(&self, i: usize, j: usize, cut: bool) {
        for key in [(i, j), (j, i)] {
            if let Some(p) = self.peer_proxies.get(&key) {
                p.set_cut(cut);
            }
        }
    }

    /// Steps server `i`'s wall clock to `offset_secs` from the true time (libfaketime
    /// reads the file again within a second).
    pub(crate) fn set_clock(&self, i: usize, offset_secs: i64) {
        let spec = if offset_secs >= 0 {
            format!("+{offset_secs}\n")
        } else {
            format!("{offset_secs}\n")
        };
        std::fs::write(&self.clocks[i], spec).expect("write clock file");
    }

    /// Gives server `i` a full disk (a capacity of one byte: every write that stores data
    /// is refused, removes still go through) or its own again; applies at its next start.
    pub(crate) fn set_disk_full(&self, i: usize, full: bool) {
        let toml = &self.layout.servers[i].toml;
        std::fs::write(toml, &self.server_tomls[i]).expect("restore server toml");
        if full {
            self.layout
                .add_server_setting(i, "capacity_bytes = 1")
                .expect("capacity setting");
        }
    }

    /// Ends every fault: paths healed, clocks true, disks as laid out, every server and
    /// the first `clients` client daemons running.
    pub(crate) async fn heal_all(&mut self, clients: usize) {
        for p in self
            .peer_proxies
            .values()
            .chain(self.client_proxies.values())
        {
            p.set_cut(false);
        }
        for i in 0..SERVERS {
            self.set_clock(i, 0);
            self.set_disk_full(i, false);
            self.start_server(i).await;
        }
        for c in 0..clients {
            self.start_client(c).await;
        }
    }

    /// SIGKILLs every server and client daemon, and starts them all again (client
    /// daemons `0..clients`).
    pub(crate) async fn restart_everything(&mut self, clients: usize) {
        for c in 0..self.clients.len() {
            self.kill_client(c);
        }
        for i in 0..SERVERS {
            self.kill_server(i);
        }
        for i in 0..SERVERS {
            self.start_server(i).await;
        }
        for c in 0..clients {
            self.start_client(c).await;
        }
    }

    /// Waits until every server's replica of the root volume has the same digests, twice
    /// in a row a second apart; returns how long it took, or the digests that still differ
    /// after `limit`.
    pub(crate) async fn converge(&self, limit: Duration) -> Result<Duration, String> {
        let inspector = Inspector::as_server(&self.layout).expect("inspector");
        let admin = Inspector::as_admin(&self.layout).expect("inspector");
        let started = Instant::now();
        let mut agreed_once = false;
        let mut last = String::new();
        while started.elapsed() < limit {
            match self.digests(&admin, &inspector).await {
                Ok(d) if d.windows(2).all(|w| w[0] == w[1]) => {
                    if agreed_once {
                        inspector.close().await;
                        admin.close().await;
                        return Ok(started.elapsed());
                    }
                    agreed_once = true;
                }
                Ok(d) => {
                    agreed_once = false;
                    last = format!("{} servers, digests differ in {} buckets", d.len(), {
                        (0..d[0].len())
                            .filter(|b| d.iter().any(|x| x[*b] != d[0][*b]))
                            .count()
                    });
                }
                Err(e) => {
                    agreed_once = false;
                    last = e;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        inspector.close().await;
        admin.close().await;
        Err(last)
    }

    /// Every server's digests of the root volume (its id read with `admin`'s status call,
    /// the digests with a server's certificate, as peers ask for them).
    async fn digests(
        &self,
        admin: &Inspector,
        inspector: &Inspector,
    ) -> Result<Vec<Vec<[u8; 32]>>, String> {
        let status = admin.status(0).await.map_err(|e| format!("{e:#}"))?;
        let volume = status
            .volumes
            .iter()
            .find(|v| v.info.name == "root")
            .ok_or("server 0 holds no root volume")?
            .info
            .id;
        let mut all = Vec::new();
        for i in 0..SERVERS {
            let d = inspector
                .volume_digests(i, volume)
                .await
                .map_err(|e| format!("digests of server {i}: {e:?}"))?;
            all.push(d);
        }
        Ok(all)
    }

    /// Conflicts each server lists for the root volume (or why its status failed).
    pub(crate) async fn conflicts(&self) -> Vec<String> {
        let inspector = Inspector::as_admin(&self.layout).expect("inspector");
        let mut out = Vec::new();
        for i in 0..SERVERS {
            let listed = match inspector.status(i).await {
                Ok(s) => s
                    .volumes
                    .iter()
                    .filter(|v| v.info.name == "root")
                    .map(|v| v.conflicts.len())
                    .sum::<usize>()
                    .to_string(),
                Err(e) => format!("status failed: {e}"),
            };
            out.push(listed);
        }
        inspector.close().await;
        out
    }
}

/// The environment that puts a server's wall clock under the file `clock`.
fn faketime_env(clock: &Path) -> Vec<(String, String)> {
    vec![
        ("LD_PRELOAD".into(), FAKETIME_LIB.into()),
        (
            "FAKETIME_TIMESTAMP_FILE".into(),
            clock.display().to_string(),
        ),
        ("FAKETIME_CACHE_DURATION".into(), "1".into()),
        // Only the wall clock steps; monotonic time (leases, deadlines) runs true.
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}
