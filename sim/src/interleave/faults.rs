//! The seeded faults of a run, and their end: every link healed, the weather calm,
//! every node back, every log shipped.

use super::World;
use super::clock;
use super::net::Weather;
use super::server_node::ServerNode;
use std::time::Duration;

/// How long after the faults end a client's log may still hold records.
const SHIP_WITHIN: Duration = Duration::from_secs(60);
/// How long healing runs after the logs are shipped, before the read-back.
const HEAL_FOR: Duration = Duration::from_secs(30);

impl World {
    /// Seeded faults until the virtual time `until`.
    pub(super) async fn faults(&mut self, until: u64) {
        while clock::elapsed_ms() < until {
            let pause = 200 + self.net.draw(1800);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            self.power_cycle_dead_disks();
            match self.net.draw(100) {
                0..=9 => {
                    let s = self.net.draw(self.servers.len() as u64) as usize;
                    if self.servers[s].is_up()
                        && !self.coordinates_group_change(&self.servers[s].name)
                    {
                        self.servers[s].crash(&self.net);
                        self.report.server_crashes += 1;
                        self.note(format!("{} killed", self.servers[s].name));
                    }
                }
                10..=14 => {
                    // The disk dies at one of the next I/Os, in the middle of whatever
                    // the store is doing; the machine then loses power.
                    let s = self.net.draw(self.servers.len() as u64) as usize;
                    let after = 1 + self.net.draw(200);
                    if !self.coordinates_group_change(&self.servers[s].name) {
                        self.servers[s].arm_disk_failure(after);
                        self.note(format!(
                            "{}'s disk fails in {after} I/Os",
                            self.servers[s].name
                        ));
                    }
                }
                15..=34 => self.restart_servers().await,
                35..=44 => {
                    let c = self.net.draw(self.clients.len() as u64) as usize;
                    if self.clients[c].running.is_some() {
                        self.handles[c].send_replace(None);
                        self.clients[c].crash(&self.net);
                        self.report.client_crashes += 1;
                        self.note(format!("{} killed", self.clients[c].name));
                    }
                }
                45..=59 => {
                    self.restart_clients().await;
                }
                60..=66 => {
                    let a = self.node_name(self.net.draw(100));
                    let b = format!("s{}", self.net.draw(self.servers.len() as u64));
                    if a != b {
                        self.net.cut(&a, &b);
                        self.report.partitions += 1;
                        self.note(format!("{a} and {b} cut off"));
                    }
                }
                67..=70 => self.island(),
                71..=82 => {
                    self.net.heal_all();
                    self.note("every partition healed".into());
                }
                83..=91 => self.change_group().await,
                92..=94 => {
                    let s = self.net.draw(self.servers.len() as u64) as usize;
                    let by = i64::try_from(self.net.draw(120_000)).unwrap_or(0) - 60_000;
                    self.servers[s].clock.step(by);
                    self.report.clock_steps += 1;
                    self.note(format!("{}'s clock stepped {by} ms", self.servers[s].name));
                }
                _ => {
                    let loss = self.net.draw(6) as f64 / 100.0;
                    let latency = Duration::from_millis(1 + self.net.draw(30));
                    self.net.set_weather(Weather { loss, latency });
                    self.note(format!("loss {loss}, latency up to {latency:?}"));
                }
            }
        }
    }

    /// Servers whose disk died lose power: what was not synced is lost or torn.
    fn power_cycle_dead_disks(&mut self) {
        for s in 0..self.servers.len() {
            if self.servers[s].disk_failed() {
                let seed = self.net.draw(u64::MAX);
                let unsynced = self.servers[s].lose_power(&self.net, seed);
                self.report.power_losses += 1;
                self.note(format!(
                    "{} lost power ({unsynced} writes not synced)",
                    self.servers[s].name
                ));
                if unsynced > 0 {
                    self.report.torn_power_losses += 1;
                }
            }
        }
    }

    /// An island: one server cut off from the other servers, with one client that
    /// reaches only it. What that client writes lands on that server alone (the
    /// operator's usual reason to remove a server is that it went unreachable).
    fn island(&mut self) {
        let s = self.net.draw(self.servers.len() as u64) as usize;
        let c = self.net.draw(self.clients.len() as u64) as usize;
        let island = self.servers[s].name.clone();
        for other in &self.servers {
            if other.name != island {
                self.net.cut(&island, &other.name);
                self.net.cut(&self.clients[c].name, &other.name);
            }
        }
        self.report.partitions += 1;
        self.report.islands += 1;
        self.note(format!("{island} an island with {}", self.clients[c].name));
    }

    /// `CODETTA_LIVE_FAULTS=1`: each fault printed with its virtual time, to follow a
    /// failing seed.
    pub(super) fn note(&self, what: String) {
        if std::env::var_os("CODETTA_LIVE_FAULTS").is_some() {
            eprintln!("{:>8} ms fault: {what}", clock::elapsed_ms());
        }
    }

    /// A node's name from a draw: a client or a server.
    fn node_name(&self, draw: u64) -> String {
        let n = (self.clients.len() + self.servers.len()) as u64;
        let i = (draw % n) as usize;
        if i < self.clients.len() {
            self.clients[i].name.clone()
        } else {
            self.servers[i - self.clients.len()].name.clone()
        }
    }

    /// Starts every server that is down. A store that cannot be opened from what its
    /// disk kept is a failure of the run; one whose disk failed while it opened (a
    /// failure armed while the server was down) is not: the machine loses power next.
    async fn restart_servers(&mut self) {
        for s in 0..self.servers.len() {
            if self.servers[s].is_up() {
                continue;
            }
            match self.servers[s].start(&self.net).await {
                Ok(()) => {}
                Err(e) if self.servers[s].disk_failed() => {
                    self.note(format!(
                        "{}'s disk failed while it started: {e:#}",
                        self.servers[s].name
                    ));
                }
                Err(e) => self
                    .report
                    .failures
                    .push(format!("restarting {}: {e:#}", self.servers[s].name)),
            }
        }
    }

    /// Starts every client daemon that is down. A start may fail while its servers are
    /// unreachable (it is tried again); why the last one failed is returned.
    async fn restart_clients(&mut self) -> Option<String> {
        let mut failed = None;
        // A daemon asks a server for the volume as the catalogue has it now.
        if let Some(info) = self.current_volume() {
            self.volume = info;
        }
        for c in 0..self.clients.len() {
            if self.clients[c].running.is_some() {
                continue;
            }
            match self.clients[c].start(&self.net, &self.volume).await {
                Ok(()) => {
                    self.handles[c].send_replace(self.clients[c].running.clone());
                }
                Err(e) => failed = Some(format!("{}: {e:#}", self.clients[c].name)),
            }
        }
        failed
    }

    /// Faults end: no disk failure is coming, links heal, the weather calms, every node
    /// comes back, and the group change under way ends.
    pub(super) async fn calm(&mut self) -> anyhow::Result<()> {
        for s in &self.servers {
            s.disarm_disk();
        }
        self.power_cycle_dead_disks();
        self.net.heal_all();
        self.net.set_weather(Weather::CALM);
        let mut why = None;
        for _ in 0..50 {
            self.restart_servers().await;
            why = self.restart_clients().await;
            let all = self.servers.iter().all(ServerNode::is_up)
                && self.clients.iter().all(|c| c.running.is_some());
            if all {
                self.finish_group_change().await;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!(
            "the nodes did not all come back within 10 s (last client start: {})",
            why.as_deref().unwrap_or("none failed")
        )
    }

    /// Waits until every client shipped its log (a record still held after
    /// [`SHIP_WITHIN`] is a failure), then lets healing run.
    pub(super) async fn settle(&mut self) {
        let deadline = clock::elapsed_ms() + SHIP_WITHIN.as_millis() as u64;
        loop {
            let held: Vec<(String, usize)> = self
                .clients
                .iter()
                .filter_map(|c| c.running.as_ref().map(|vc| (c.name.clone(), vc.backlog())))
                .filter(|(_, backlog)| *backlog > 0)
                .collect();
            if held.is_empty() {
                break;
            }
            if clock::elapsed_ms() >= deadline {
                for (name, backlog) in held {
                    self.report.failures.push(format!(
                        "{name} still holds {backlog} records {SHIP_WITHIN:?} after the faults ended"
                    ));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(HEAL_FOR).await;
    }
}
