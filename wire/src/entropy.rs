//! Where the client and the server draw random numbers (incarnations, session and lease
//! holder ids): the thread's generator, or one seeded by the simulation so that a run
//! replays exactly.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// From now on this thread's draws come from a generator seeded with `seed`.
pub fn seed_this_thread(seed: u64) {
    SEEDED.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// A random `u64`.
pub fn random_u64() -> u64 {
    SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(rng) => rng.random(),
        None => rand::random(),
    })
}

/// A random `u32`.
pub fn random_u32() -> u32 {
    (random_u64() >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_numbers_again() {
        let run = || {
            seed_this_thread(7);
            (random_u64(), random_u32())
        };
        let first = std::thread::spawn(run).join().ok();
        let second = std::thread::spawn(run).join().ok();
        assert!(first.is_some());
        assert_eq!(first, second);
    }
}
