//! Looking at each replica of an object directly (with the client certificate), to see
//! whether the replicas agree: used by the fault tests and `codetta status`.

use crate::layout::Layout;
use anyhow::Context;
use bytes::Bytes;
use codetta_certs::Identity;
use codetta_transport::{Link, ServerEntry};
use codetta_wire::message::{ObjectState, ReplyBody};
use codetta_wire::{Fid, Frame, FsError, Request};
use std::sync::Arc;
use std::time::Duration;

/// Links to every server of a layout, as the client `c1`.
pub struct Inspector {
    links: Vec<Link>,
}

/// What one server says about an object: its state, an error it answered, or why it
/// could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    State(ObjectState),
    Refused(FsError),
    Unreachable(String),
}

impl Inspector {
    /// Links made with the client certificate.
    pub fn new(layout: &Layout) -> anyhow::Result<Inspector> {
        Self::with_certificate(layout, "c1")
    }

    /// Links made with the admin certificate (for admin calls such as catalogue changes).
    pub fn as_admin(layout: &Layout) -> anyhow::Result<Inspector> {
        Self::with_certificate(layout, "admin")
    }

    /// Links made with server `s1`'s certificate (for calls between servers, such as a
    /// volume's digests).
    pub fn as_server(layout: &Layout) -> anyhow::Result<Inspector> {
        Self::with_certificate(layout, "s1")
    }

    fn with_certificate(layout: &Layout, name: &str) -> anyhow::Result<Inspector> {
        let certs = layout.dir.join("certs");
        let identity = Identity::load(
            &certs.join(codetta_certs::CA_CERT_FILE),
            &certs.join(format!("{name}.pem")),
            &certs.join(format!("{name}.key")),
        )
        .with_context(|| format!("loading the {name} certificate"))?;
        let endpoint = codetta_transport::client_endpoint(&identity)?;
        let identity = Arc::new(identity);
        let links = layout
            .servers
            .iter()
            .map(|s| {
                let entry = ServerEntry {
                    name: s.name.clone(),
                    addr: s.addr(),
                };
                Link::new(
                    &entry,
                    identity.clone(),
                    endpoint.clone(),
                    Duration::from_secs(2),
                )
            })
            .collect();
        Ok(Inspector { links })
    }

    async fn call(&self, i: usize, request: &Request) -> Result<ReplyBody, Answer> {
        let frame = Frame::request(request, Bytes::new())
            .map_err(|e| Answer::Unreachable(e.to_string()))?;
        let reply = self.links[i]
            .call(&frame)
            .await
            .map_err(|e| Answer::Unreachable(e.to_string()))?;
        match reply.decode_reply() {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(e)) => Err(Answer::Refused(e)),
            Err(e) => Err(Answer::Unreachable(e.to_string())),
        }
    }

    /// Every server's answer about `fid`, in server order.
    pub async fn states(&self, fid: Fid) -> Vec<Answer> {
        let mut out = Vec::with_capacity(self.links.len());
        for i in 0..self.links.len() {
            out.push(match self.call(i, &Request::GetAttr { fid }).await {
                Ok(ReplyBody::State(s)) => Answer::State(s),
                Ok(other) => Answer::Unreachable(format!("unexpected reply {other:?}")),
                Err(a) => a,
            });
        }
        out
    }

    /// True if every server answered and all hold `fid` in the same state (equal tags and
    /// versions), or all say it does not exist.
    pub async fn agree(&self, fid: Fid) -> bool {
        let states = self.states(fid).await;
        let first = &states[0];
        !matches!(first, Answer::Unreachable(_)) && states.iter().all(|s| s == first)
    }

    /// The entries of directory `dir` on server `i`: (name, fid).
    pub async fn list(&self, i: usize, dir: Fid) -> anyhow::Result<Vec<(String, Fid)>> {
        let mut out = Vec::new();
        let mut cookie = 0;
        loop {
            let request = Request::ReadDir {
                dir,
                cookie,
                max_entries: 4096,
                with_attrs: false,
            };
            match self.call(i, &request).await {
                Ok(ReplyBody::Dir { entries, eof, .. }) => {
                    for e in &entries {
                        cookie = e.cookie;
                        out.push((e.name.to_string(), e.fid));
                    }
                    if eof || entries.is_empty() {
                        return Ok(out);
                    }
                }
                Ok(other) => anyhow::bail!("unexpected reply {other:?}"),
                Err(a) => anyhow::bail!("{a:?}"),
            }
        }
    }

    /// Server `i`'s status.
    pub async fn status(&self, i: usize) -> anyhow::Result<codetta_wire::message::ServerStatus> {
        match self.call(i, &Request::Status).await {
            Ok(ReplyBody::Status(s)) => Ok(s),
            Ok(other) => anyhow::bail!("unexpected reply {other:?}"),
            Err(a) => anyhow::bail!("{a:?}"),
        }
    }

    /// Sends a catalogue call to server `i` (admin role) and returns the encoded answer.
    pub async fn catalogue(
        &self,
        i: usize,
        call: codetta_wire::message::CatalogueCall,
    ) -> anyhow::Result<Vec<u8>> {
        match self.call(i, &Request::Catalogue(call)).await {
            Ok(ReplyBody::Catalogue(bytes)) => Ok(bytes),
            Ok(other) => anyhow::bail!("unexpected reply {other:?}"),
            Err(a) => anyhow::bail!("{a:?}"),
        }
    }

    /// Server `i`'s bucket digests of `volume` (see [`Inspector::as_server`]): equal on
    /// two servers when their replicas hold the same objects in the same states.
    pub async fn volume_digests(
        &self,
        i: usize,
        volume: codetta_wire::VolumeId,
    ) -> Result<Vec<[u8; 32]>, Answer> {
        match self.call(i, &Request::VolumeDigests { volume }).await? {
            ReplyBody::Digests(d) => Ok(d),
            other => Err(Answer::Unreachable(format!("unexpected reply {other:?}"))),
        }
    }

    /// Closes the connections.
    pub async fn close(&self) {
        for l in &self.links {
            l.close().await;
        }
    }
}
