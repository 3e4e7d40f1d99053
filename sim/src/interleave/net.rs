//! The simulated network: every call between a client and a server, or between two
//! servers, passes here. Each crossing waits a seeded latency on the virtual clock, may be
//! lost (the caller waits out its deadline, as over QUIC) and is refused by a partition
//! or a server that is down. A server's handler runs in a task of its own, as a QUIC
//! server runs each stream: a caller giving up does not stop it, a crash does.

use codetta_certs::Role;
use codetta_server::service::ServerService;
use codetta_transport::{
    CarriedCall, Carrier, ConnectionEnd, Link, MakeLink, Peer, ServerEntry, Service, TransportError,
};
use codetta_wire::Frame;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;

/// How messages fare while faults are on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Weather {
    /// Chance that a request or a reply is lost.
    pub(crate) loss: f64,
    /// Longest one-way latency (each crossing waits a seeded part of it).
    pub(crate) latency: Duration,
}

impl Weather {
    /// No loss, up to 2 ms each way.
    pub(crate) const CALM: Weather = Weather {
        loss: 0.0,
        latency: Duration::from_millis(2),
    };
}

/// One server as the network sees it: its service while it runs, and the tasks running
/// its handlers (a crash ends them).
struct Host {
    service: Option<Arc<ServerService>>,
    /// Goes up at each start: a connection made before it is dead.
    boot: u64,
    handlers: Vec<AbortHandle>,
}

struct State {
    rng: StdRng,
    hosts: BTreeMap<String, Host>,
    /// Each calling node's current life: a carrier made in an earlier one belongs to a
    /// process that was killed, and its calls go nowhere.
    lives: BTreeMap<String, u64>,
    /// Pairs of nodes (sorted) that cannot reach each other.
    cuts: BTreeSet<(String, String)>,
    weather: Weather,
    next_connection: u64,
    /// Calls delivered, for the run's report.
    delivered: u64,
}

/// The network shared by every node of one run.
#[derive(Clone)]
pub(crate) struct Net {
    state: Arc<Mutex<State>>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl Net {
    /// A calm network drawing its chances from `seed`.
    pub(crate) fn new(seed: u64) -> Net {
        Net {
            state: Arc::new(Mutex::new(State {
                rng: StdRng::seed_from_u64(seed),
                hosts: BTreeMap::new(),
                cuts: BTreeSet::new(),
                weather: Weather::CALM,
                lives: BTreeMap::new(),
                next_connection: 0,
                delivered: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets how messages fare from now on.
    pub(crate) fn set_weather(&self, weather: Weather) {
        self.lock().weather = weather;
    }

    /// `name` serves `service` from now on (a start or a restart).
    pub(crate) fn serve(&self, name: &str, service: Arc<ServerService>) {
        let mut s = self.lock();
        let host = s.hosts.entry(name.to_string()).or_insert(Host {
            service: None,
            boot: 0,
            handlers: Vec::new(),
        });
        host.service = Some(service);
        host.boot += 1;
    }

    /// `name` stops at once: calls to it go unanswered and its running handlers end
    /// wherever they are.
    pub(crate) fn crash(&self, name: &str) {
        let mut s = self.lock();
        // What its leftover tasks (openraft's, until they stop) send goes nowhere.
        *s.lives.entry(name.to_string()).or_insert(0) += 1;
        if let Some(host) = s.hosts.get_mut(name) {
            host.service = None;
            for h in host.handlers.drain(..) {
                h.abort();
            }
        }
    }

    /// `a` and `b` can no longer reach each other.
    pub(crate) fn cut(&self, a: &str, b: &str) {
        self.lock().cuts.insert(pair(a, b));
    }

    /// Whether `a` and `b` are cut off from each other.
    pub(crate) fn is_cut(&self, a: &str, b: &str) -> bool {
        self.lock().cuts.contains(&pair(a, b))
    }

    /// Every partition ends.
    pub(crate) fn heal_all(&self) {
        self.lock().cuts.clear();
    }

    /// Calls delivered to a handler so far.
    pub(crate) fn delivered(&self) -> u64 {
        self.lock().delivered
    }

    /// A seeded draw for the caller (fault choices share the network's generator, so one
    /// seed decides everything).
    pub(crate) fn draw(&self, below: u64) -> u64 {
        self.lock().rng.random_range(0..below.max(1))
    }

    /// A new life of node `name` begins (its start, or a start after its process was
    /// killed): links made before it are dead.
    pub(crate) fn begin_life(&self, name: &str) {
        *self.lock().lives.entry(name.to_string()).or_insert(0) += 1;
    }

    fn life(&self, name: &str) -> u64 {
        self.lock().lives.get(name).copied().unwrap_or(0)
    }

    /// How node `me` (of `role`) makes its links to servers in its current life: each
    /// call carried here, under `deadline`.
    pub(crate) fn link_maker(&self, me: &str, role: Role, deadline: Duration) -> MakeLink {
        let net = self.clone();
        let me = me.to_string();
        Box::new(move |entry: &ServerEntry| {
            Link::carried(entry, net.carrier(&me, role, &entry.name), deadline)
        })
    }

    /// The carrier for calls from `from` (of `role`, in its current life) to server `to`.
    fn carrier(&self, from: &str, role: Role, to: &str) -> Arc<dyn Carrier> {
        Arc::new(SimCarrier(Arc::new(Route {
            net: self.clone(),
            from: from.to_string(),
            life: self.life(from),
            role,
            to: to.to_string(),
            conn: Mutex::new(None),
            generation: AtomicU64::new(0),
        })))
    }

    /// One crossing from `from` to `to`: its latency, and whether it arrives.
    fn crossing(&self, from: &str, to: &str) -> (Duration, bool) {
        let mut s = self.lock();
        let latency = s.weather.latency;
        let loss = s.weather.loss;
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        let wait = Duration::from_nanos(s.rng.random_range(0..nanos));
        let lost = loss > 0.0 && s.rng.random_bool(loss.min(1.0));
        let arrives = !lost && !s.cuts.contains(&pair(from, to));
        (wait, arrives)
    }

    /// The service `to` runs now and its boot number, if it is up.
    fn service(&self, to: &str) -> Option<(Arc<ServerService>, u64)> {
        let s = self.lock();
        let host = s.hosts.get(to)?;
        Some((host.service.clone()?, host.boot))
    }

    /// Runs `request` in a task of `to`'s (ended by its crash); the reply, unless the
    /// server went down first.
    fn dispatch(
        &self,
        to: &str,
        boot: u64,
        service: Arc<ServerService>,
        peer: Arc<Peer>,
        request: Frame,
    ) -> oneshot::Receiver<Frame> {
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let reply = service.handle(peer, request).await;
            let _ = tx.send(reply);
        });
        let mut s = self.lock();
        s.delivered += 1;
        match s.hosts.get_mut(to) {
            Some(host) if host.boot == boot && host.service.is_some() => {
                host.handlers.retain(|h| !h.is_finished());
                host.handlers.push(task.abort_handle());
            }
            _ => task.abort(),
        }
        rx
    }
}

/// A connection from one caller to one server boot.
struct SimConnection {
    boot: u64,
    peer: Arc<Peer>,
    /// Dropping it closes the server's end.
    _open: watch::Sender<bool>,
}

/// Calls from one node to one server.
struct SimCarrier(Arc<Route>);

/// What a carrier holds: the two ends and the connection between them.
struct Route {
    net: Net,
    from: String,
    /// The caller's life this route belongs to.
    life: u64,
    role: Role,
    to: String,
    conn: Mutex<Option<SimConnection>>,
    generation: AtomicU64,
}

impl Route {
    /// The connection to the server's current boot, made now if there is none (a
    /// connection to an earlier boot is dead: its promises went with it).
    fn connection(&self, boot: u64) -> Arc<Peer> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conn.as_ref()
            && c.boot == boot
        {
            return c.peer.clone();
        }
        let (open, closed) = watch::channel(false);
        let id = {
            let mut s = self.net.lock();
            s.next_connection += 1;
            s.next_connection
        };
        let peer = Arc::new(Peer {
            role: self.role,
            name: self.from.clone(),
            fingerprint: format!("sim-{}", self.from),
            connection: ConnectionEnd::Carried(closed),
            connection_id: id,
        });
        self.generation.fetch_add(1, Ordering::AcqRel);
        *conn = Some(SimConnection {
            boot,
            peer: peer.clone(),
            _open: open,
        });
        peer
    }

    async fn exchange(self: Arc<Self>, request: Frame) -> Result<Frame, TransportError> {
        if self.net.life(&self.from) != self.life {
            // A task its killed process left behind: nothing it sends leaves the machine.
            return std::future::pending().await;
        }
        let (there, arrives) = self.net.crossing(&self.from, &self.to);
        tokio::time::sleep(there).await;
        let up = self.net.service(&self.to);
        let Some((service, boot)) = up.filter(|_| arrives) else {
            return std::future::pending().await;
        };
        let peer = self.connection(boot);
        let reply = self
            .net
            .dispatch(&self.to, boot, service, peer, request)
            .await;
        let Ok(reply) = reply else {
            return std::future::pending().await;
        };
        // Once sent, a reply arrives even if its server dies meanwhile: only loss or a
        // partition stops it.
        let (back, arrives) = self.net.crossing(&self.to, &self.from);
        tokio::time::sleep(back).await;
        if !arrives {
            return std::future::pending().await;
        }
        Ok(reply)
    }
}

impl Carrier for SimCarrier {
    fn call(&self, request: Frame, deadline: Duration) -> CarriedCall {
        let this = self.0.clone();
        Box::pin(async move {
            tokio::time::timeout(deadline, this.exchange(request))
                .await
                .unwrap_or(Err(TransportError::Timeout(deadline)))
        })
    }

    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    fn close(&self) {
        *self.0.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}
