//! A running server: the store, the QUIC endpoint and the accept loop.

use crate::catalogue::{Catalogue, CatalogueNode, CatalogueTransport, QuicTransport};
use crate::config::ServerConfig;
use crate::context::ServerContext;
use crate::service::ServerService;
use crate::store::{Store, StoreOptions};
use anyhow::Context;
use codetta_certs::{Identity, Role};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// A server serving until stopped.
pub struct ServerDaemon {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerDaemon {
    /// Opens the store and starts serving on the configured address.
    pub async fn start(config: &ServerConfig) -> anyhow::Result<ServerDaemon> {
        let identity = Identity::load(&config.ca, &config.cert, &config.key)
            .context("loading the server's certificate")?;
        if identity.role() != Role::Server {
            anyhow::bail!(
                "{} is a {} certificate, not a server certificate",
                config.cert.display(),
                identity.role()
            );
        }
        if identity.name() != config.name {
            anyhow::bail!(
                "the certificate names {:?} but the configuration names {:?}",
                identity.name(),
                config.name
            );
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let path = config.data_dir.join("server.redb");
        let options = StoreOptions {
            capacity_bytes: config.capacity_bytes,
            cache_bytes: config.cache_bytes,
            changes_kept: config.changes_kept,
        };
        let store = codetta_transport::off_thread(move || Store::open(&path, options))
            .await?
            .context("opening the store")?;
        let endpoint = codetta_transport::server_endpoint(config.listen, &identity)
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = endpoint.local_addr()?;
        let advertised = match config.advertise {
            Some(a) => a,
            None if addr.ip().is_unspecified() => anyhow::bail!(
                "listen = {addr} is not an address others can reach: set advertise = \"IP:PORT\" \
                 (the address the catalogue gives clients and servers)"
            ),
            None => addr,
        };
        let peers = crate::peers::Peers::new(
            &identity,
            &config.peers,
            std::time::Duration::from_millis(config.peer_deadline_ms),
        )
        .context("setting up links to peers")?;
        let peers = Arc::new(peers);
        let ctx = ServerContext::new(Arc::new(store), &config.name, peers.clone());
        ctx.set_heal_pause(config.heal_pause);
        ctx.pacer()
            .set_install_delay(std::time::Duration::from_millis(
                config.test_install_delay_ms,
            ));
        let catalogue = start_catalogue(config, advertised, peers).await?;
        ctx.set_catalogue(catalogue.clone());
        let (stop, stop_rx) = watch::channel(false);
        let healer = match config.heal_interval_ms {
            0 => tokio::spawn(async {}),
            ms => tokio::spawn(crate::heal::run(
                ctx.clone(),
                std::time::Duration::from_millis(ms),
                stop_rx.clone(),
            )),
        };
        let collector = match config.collect_interval_ms {
            0 => tokio::spawn(async {}),
            ms => tokio::spawn(crate::collect::run(
                ctx.clone(),
                std::time::Duration::from_millis(ms),
                crate::collect::CollectPolicy {
                    min_age_ms: config.tombstone_min_age_ms,
                    horizon_ms: config.tombstone_horizon_ms,
                },
                stop_rx.clone(),
            )),
        };
        let follower = tokio::spawn(crate::volumes::run(ctx.clone(), stop_rx.clone()));
        let enrol = tokio::spawn(enrol(
            catalogue.clone(),
            crate::catalogue::ServerEntry {
                name: config.name.clone(),
                addr: advertised.to_string(),
            },
            stop_rx.clone(),
        ));
        let serve = tokio::spawn(codetta_transport::serve(
            endpoint,
            Arc::new(ServerService::new(ctx)),
            stop_rx,
        ));
        let task = tokio::spawn(async move {
            let _ = serve.await;
            let _ = healer.await;
            let _ = collector.await;
            let _ = follower.await;
            let _ = enrol.await;
            // Last: the tasks above hold the service and with it the catalogue. Once this
            // returns (and `catalogue` drops here), `catalogue.redb` is closed, so a server
            // started again in this process can open it.
            catalogue.shutdown().await;
        });
        tracing::info!(%addr, name = %config.name, "server ready");
        Ok(ServerDaemon { addr, stop, task })
    }

    /// Stops accepting calls and waits for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Makes sure the catalogue lists this server at its address (volumes can only be placed
/// on listed servers), retrying until a majority commits it or the server stops.
async fn enrol(
    catalogue: Arc<Catalogue<QuicTransport>>,
    me: crate::catalogue::ServerEntry,
    mut stop: watch::Receiver<bool>,
) {
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        if catalogue.current().servers.get(&me.name) == Some(&me) {
            return;
        }
        match catalogue
            .propose(crate::catalogue::Change::AddServer(me.clone()))
            .await
        {
            Ok(Ok(_)) => return,
            Ok(Err(refusal)) => {
                tracing::error!("the catalogue refuses this server: {refusal}");
                return;
            }
            Err(e) => tracing::debug!("enrolling in the catalogue: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
}

fn catalogue_node(catalogue: &Catalogue<QuicTransport>) -> CatalogueNode {
    catalogue.me().clone()
}

/// Starts this server's catalogue node (its Raft state in `catalogue.redb`). The server
/// whose name sorts first among itself and its peers makes them all the first voters (a
/// no-op once the group exists).
async fn start_catalogue(
    config: &ServerConfig,
    addr: std::net::SocketAddr,
    peers: Arc<crate::peers::Peers>,
) -> anyhow::Result<Arc<Catalogue<QuicTransport>>> {
    let me = CatalogueNode {
        name: config.name.clone(),
        addr: addr.to_string(),
    };
    let mut members: Vec<CatalogueNode> = config
        .peers
        .iter()
        .map(|p| CatalogueNode {
            name: p.name.clone(),
            addr: p.addr.to_string(),
        })
        .collect();
    members.push(me.clone());
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let transport = Arc::new(QuicTransport::new(peers));
    let catalogue = Catalogue::start(
        me,
        &config.data_dir.join("catalogue.redb"),
        transport.clone(),
    )
    .await
    .context("starting the catalogue")?;
    let catalogue = Arc::new(catalogue);
    if !config.join && members.first().is_some_and(|m| m.name == config.name) {
        // Not if a peer already belongs to a group (this server was wiped, or added with
        // a name that sorts first but without `join`): that would start a second one.
        let others: Vec<CatalogueNode> = members
            .into_iter()
            .filter(|m| m.name != config.name)
            .collect();
        let catalogue = catalogue.clone();
        tokio::spawn(async move {
            for peer in &others {
                if transport.read(peer).await.is_ok() {
                    tracing::info!(peer = %peer.name, "a catalogue group exists; not starting one");
                    return;
                }
            }
            let mut members = others;
            members.push(catalogue_node(&catalogue));
            if let Err(e) = catalogue.initialize(&members).await {
                tracing::error!("starting the catalogue group: {e}");
            }
        });
    }
    Ok(catalogue)
}
