//! A UDP proxy the test controls: forwards datagrams between its callers and one target,
//! and drops everything while cut (a partition without netem).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::net::UdpSocket;

/// One proxied path; dropping it stops forwarding.
pub(crate) struct UdpProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Milliseconds each datagram from the target waits before it is passed on.
    delay_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub(crate) async fn start(target: SocketAddr) -> UdpProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind proxy"));
        let addr = front.local_addr().expect("proxy addr");
        let cut = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(front, target, cut.clone(), delay_ms.clone()));
        UdpProxy {
            addr,
            cut,
            delay_ms,
            task,
        }
    }

    /// Holds every datagram from the target for `delay` before passing it on (a slow path
    /// back to the caller).
    pub(crate) fn set_delay(&self, delay: std::time::Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Drops every datagram both ways while `cut` is true.
    pub(crate) fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One upstream socket per caller, so the target sees a distinct address per flow.
async fn run(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    cut: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = front.recv_from(&mut buf).await else {
            return;
        };
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        let up = match flows.get(&from) {
            Some(s) => s.clone(),
            None => {
                let Ok(s) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                let s = Arc::new(s);
                flows.insert(from, s.clone());
                // Replies from the target go back to this caller.
                let (back, front2, cut2) = (s.clone(), front.clone(), cut.clone());
                let delay = delay_ms.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    while let Ok((n, _)) = back.recv_from(&mut buf).await {
                        if cut2.load(Ordering::SeqCst) {
                            continue;
                        }
                        let ms = delay.load(Ordering::SeqCst);
                        if ms == 0 {
                            let _ = front2.send_to(&buf[..n], from).await;
                        } else {
                            let (front3, datagram) = (front2.clone(), buf[..n].to_vec());
                            tokio::spawn(async move {
                                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                                let _ = front3.send_to(&datagram, from).await;
                            });
                        }
                    }
                });
                s
            }
        };
        let _ = up.send_to(&buf[..n], target).await;
    }
}

/// Rewrites every `addr = "<real>"` line of a configuration `text` whose address is in
/// `routes` (real address -> proxy address).
pub(crate) fn route(text: &str, routes: &std::collections::BTreeMap<String, String>) -> String {
    text.lines()
        .map(|line| {
            for (real, via) in routes {
                if line.trim() == format!("addr = \"{real}\"") {
                    return format!("addr = \"{via}\"");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Puts a proxy on every server-to-server path of `layout` (rewriting the servers'
/// `[[peers]]`): the proxy at `(i, j)` carries server i's calls to server j.
pub(crate) async fn proxy_peer_links(
    layout: &codetta_cluster::Layout,
) -> std::collections::BTreeMap<(usize, usize), UdpProxy> {
    let n = layout.servers.len();
    let mut proxies = std::collections::BTreeMap::new();
    for i in 0..n {
        let mut routes = std::collections::BTreeMap::new();
        for j in (0..n).filter(|j| *j != i) {
            let p = UdpProxy::start(layout.servers[j].addr()).await;
            routes.insert(layout.servers[j].addr().to_string(), p.addr.to_string());
            proxies.insert((i, j), p);
        }
        let text = std::fs::read_to_string(&layout.servers[i].toml).expect("server toml");
        std::fs::write(&layout.servers[i].toml, route(&text, &routes)).expect("write");
    }
    proxies
}
