//! Background passes run every so often until the server stops (healing, tombstone
//! collection).

use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Runs `pass` every `interval` until `stop` is set. A pass in progress is abandoned when
/// it is (one that meets a dying peer may take a while: stopping must not wait for it).
pub async fn every<F, Fut>(interval: Duration, mut stop: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `biased`: the order is the code's, not tokio's random draw (the simulation
        // replays a seed exactly).
        tokio::select! {
            biased;
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            biased;
            () = pass() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
