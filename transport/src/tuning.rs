//! Transport settings, chosen per peer: loopback or a real network.
//!
//! The figures come from measurements on the development machine (docs/design.md,
//! "Measured facts that shaped the design"): with quinn's defaults QUIC costs ~7.8 CPU-s
//! per GiB on loopback; with the loopback tuning below ~2 CPU-s per GiB.

use quinn::congestion::CubicConfig;
use quinn::{IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest UDP payload an endpoint accepts (the IPv6 maximum); peers learn it from the
/// transport parameters, so it must be at least the largest packet a peer may send us.
pub const ENDPOINT_MAX_UDP_PAYLOAD: u16 = 65_527;
/// SO_SNDBUF and SO_RCVBUF asked for on every endpoint socket (the kernel may cap them at
/// `net.core.wmem_max`/`rmem_max`).
pub const SOCKET_BUFFER_BYTES: usize = 8 << 20;

const WINDOW: u32 = 16 << 20;
const LOOPBACK_MTU: u16 = 65_000;
const LAN_MTU_BOUND: u16 = 6_500;

/// Which kind of path a tuning is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// Loopback (MTU 65,536): huge packets, no GSO.
    Loopback,
    /// Any real network: MTU discovery up to 6,500 bytes, GSO on.
    Lan,
}

/// One tested set of QUIC transport settings. Build a [`TransportConfig`] with
/// [`TransportTuning::transport_config`].
///
/// Invariants: `initial_window` is at least one packet of `mtu_upper_bound` bytes (otherwise
/// Cubic never sends a full-size packet); segmentation offload is off whenever packets may
/// exceed ~6,500 bytes (quinn 0.11 overfills a GSO batch: EMSGSIZE, quinn issue 2201).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportTuning {
    pub kind: PathKind,
    /// First packet size tried after the handshake; `min_mtu` stays at QUIC's 1200.
    pub initial_mtu: u16,
    /// MTU discovery searches up to this UDP payload size.
    pub mtu_upper_bound: u16,
    /// Generic segmentation offload (batched sends).
    pub segmentation_offload: bool,
    /// Cubic's initial congestion window, bytes.
    pub initial_window: u64,
    /// Per-stream receive window, bytes.
    pub stream_receive_window: u32,
    /// Connection-wide receive window, bytes.
    pub receive_window: u32,
    /// Connection-wide send buffer, bytes.
    pub send_window: u64,
    pub keep_alive: Duration,
    /// A peer silent this long is gone; keep-alives keep an idle but live peer below it.
    pub idle_timeout: Duration,
    /// Concurrent requests per connection (one bidirectional stream each).
    pub max_concurrent_bidi_streams: u32,
}

impl TransportTuning {
    /// For peers on this machine.
    pub const fn loopback() -> TransportTuning {
        TransportTuning {
            kind: PathKind::Loopback,
            initial_mtu: LOOPBACK_MTU,
            mtu_upper_bound: LOOPBACK_MTU,
            segmentation_offload: false,
            initial_window: 10 * LOOPBACK_MTU as u64,
            ..Self::lan()
        }
    }

    /// For peers across a real network.
    pub const fn lan() -> TransportTuning {
        TransportTuning {
            kind: PathKind::Lan,
            initial_mtu: 1200,
            mtu_upper_bound: LAN_MTU_BOUND,
            segmentation_offload: true,
            initial_window: 10 * LAN_MTU_BOUND as u64,
            stream_receive_window: WINDOW,
            receive_window: WINDOW,
            send_window: WINDOW as u64,
            keep_alive: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(3),
            max_concurrent_bidi_streams: 1024,
        }
    }

    /// Loopback tuning for a loopback address (IPv4, IPv6, or IPv4-mapped IPv6), LAN tuning
    /// otherwise.
    pub fn for_peer(addr: SocketAddr) -> TransportTuning {
        if addr.ip().to_canonical().is_loopback() {
            Self::loopback()
        } else {
            Self::lan()
        }
    }

    /// The quinn configuration for these settings.
    pub fn transport_config(&self) -> TransportConfig {
        let mut config = TransportConfig::default();
        let mut mtu = MtuDiscoveryConfig::default();
        mtu.upper_bound(self.mtu_upper_bound);
        let mut cubic = CubicConfig::default();
        cubic.initial_window(self.initial_window);
        let idle_ms = u32::try_from(self.idle_timeout.as_millis()).unwrap_or(u32::MAX);
        config
            .initial_mtu(self.initial_mtu)
            .mtu_discovery_config(Some(mtu))
            .enable_segmentation_offload(self.segmentation_offload)
            .congestion_controller_factory(Arc::new(cubic))
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(self.receive_window))
            .send_window(self.send_window)
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(idle_ms))))
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_concurrent_bidi_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(0));
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn loopback_addresses_get_loopback_tuning() {
        let v4: SocketAddr = (Ipv4Addr::LOCALHOST, 4433).into();
        let v4_other: SocketAddr = (Ipv4Addr::new(127, 0, 0, 2), 4433).into();
        let v6: SocketAddr = (Ipv6Addr::LOCALHOST, 4433).into();
        let mapped: SocketAddr = (Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 4433).into();
        for addr in [v4, v4_other, v6, mapped] {
            assert_eq!(
                TransportTuning::for_peer(addr).kind,
                PathKind::Loopback,
                "{addr}"
            );
        }
        let lan4: SocketAddr = (Ipv4Addr::new(192, 168, 1, 7), 4433).into();
        let lan6: SocketAddr = (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 4433).into();
        let unspecified: SocketAddr = (Ipv4Addr::UNSPECIFIED, 4433).into();
        for addr in [lan4, lan6, unspecified] {
            assert_eq!(
                TransportTuning::for_peer(addr).kind,
                PathKind::Lan,
                "{addr}"
            );
        }
    }

    #[test]
    fn loopback_tuning_matches_the_measurements() {
        let t = TransportTuning::loopback();
        assert_eq!(t.initial_mtu, 65_000);
        assert_eq!(t.mtu_upper_bound, 65_000);
        assert!(!t.segmentation_offload);
        assert!(t.mtu_upper_bound <= ENDPOINT_MAX_UDP_PAYLOAD);
        assert_eq!(t.stream_receive_window, 16 << 20);
        assert_eq!(t.receive_window, 16 << 20);
        assert_eq!(t.send_window, 16 << 20);
        assert_eq!(t.keep_alive, Duration::from_millis(500));
        assert_eq!(t.idle_timeout, Duration::from_secs(3));
        assert_eq!(t.max_concurrent_bidi_streams, 1024);
    }

    #[test]
    fn lan_tuning_keeps_gso_and_small_packets() {
        let t = TransportTuning::lan();
        assert!(t.segmentation_offload);
        assert_eq!(t.mtu_upper_bound, 6_500);
        assert_eq!(t.initial_mtu, 1200);
        assert_eq!(t.stream_receive_window, 16 << 20);
        assert_eq!(t.keep_alive, Duration::from_millis(500));
        assert_eq!(t.idle_timeout, Duration::from_secs(3));
    }

    #[test]
    fn invariants_hold_for_every_tuning() {
        for t in [TransportTuning::loopback(), TransportTuning::lan()] {
            assert!(t.initial_window >= u64::from(t.mtu_upper_bound), "{t:?}");
            assert!(t.initial_mtu <= t.mtu_upper_bound, "{t:?}");
            assert!(
                !t.segmentation_offload || t.mtu_upper_bound <= 6_500,
                "{t:?}"
            );
            assert!(t.keep_alive < t.idle_timeout, "{t:?}");
        }
    }

    #[test]
    fn quinn_config_carries_the_settings() {
        let debug = format!("{:?}", TransportTuning::loopback().transport_config());
        assert!(debug.contains("initial_mtu: 65000"), "{debug}");
        assert!(debug.contains("upper_bound: 65000"), "{debug}");
        assert!(
            debug.contains("enable_segmentation_offload: false"),
            "{debug}"
        );
        let debug = format!("{:?}", TransportTuning::lan().transport_config());
        assert!(debug.contains("upper_bound: 6500"), "{debug}");
        assert!(
            debug.contains("enable_segmentation_offload: true"),
            "{debug}"
        );
    }
}
