//! States of this client's own changes, as the replicas answer them (rule 15). Each AVSG
//! member answers a batch with the state, after it, of the objects it changed, each under a
//! promise to this client's session. Once every member has answered for an object with the
//! same tag, as of this client's last record on it, the state may be cached: after its own
//! CREATE, WRITE or SETATTR the client asks the servers nothing to learn the result.
//!
//! No I/O and no clock here: the VolumeClient offers each answer with the cache snapshot and the
//! trust taken when its batch was sent, and installs what comes out.

use codetta_wire::Fid;
use codetta_wire::message::ObjectState;
use std::collections::HashMap;

/// Most objects waiting for the rest of their answers; past it all are forgotten (rare:
/// answers that never agree, e.g. a member gone; they are then asked for when next
/// needed, as without a landing).
const MAX_WAITING: usize = 4096;

/// One member's answer for one object.
#[derive(Debug, Clone)]
struct Answer<S> {
    member: usize,
    /// The last record the member had applied when it read the state.
    as_of: u64,
    /// When the batch was sent: the cache snapshot and the trust of that moment.
    stamp: S,
    state: ObjectState,
}

/// An agreed state, with the stamp of every answer behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Landed<S> {
    pub state: ObjectState,
    pub stamps: Vec<S>,
}

/// Answers gathered per object until every AVSG member has given one.
#[derive(Debug)]
pub struct Landing<S> {
    waiting: HashMap<Fid, Vec<Answer<S>>>,
}

impl<S> Default for Landing<S> {
    fn default() -> Self {
        Landing {
            waiting: HashMap::new(),
        }
    }
}

impl<S: Clone> Landing<S> {
    /// Member `member` answered its batch ending at record `as_of` (sent at `stamp`) with
    /// `states`. Returns the objects whose states now agree on every member of `avsg`, as
    /// of `last_record(fid)` (the last logged record touching the object); they stop
    /// waiting.
    pub fn offer(
        &mut self,
        member: usize,
        as_of: u64,
        stamp: &S,
        states: Vec<ObjectState>,
        avsg: &[usize],
        last_record: impl Fn(&Fid) -> u64,
    ) -> Vec<Landed<S>> {
        let mut landed = Vec::new();
        for state in states {
            let fid = state.fid;
            if self.waiting.len() >= MAX_WAITING && !self.waiting.contains_key(&fid) {
                self.waiting.clear();
            }
            let answers = self.waiting.entry(fid).or_default();
            answers.retain(|a| a.member != member);
            answers.push(Answer {
                member,
                as_of,
                stamp: stamp.clone(),
                state,
            });
            if let Some(l) = agreed(answers, avsg, last_record(&fid)) {
                self.waiting.remove(&fid);
                landed.push(l);
            }
        }
        landed
    }
}

/// The state every member of `avsg` answered with the same tag, each as of `last` or later.
fn agreed<S: Clone>(answers: &[Answer<S>], avsg: &[usize], last: u64) -> Option<Landed<S>> {
    if avsg.is_empty() {
        return None;
    }
    let mut found: Vec<&Answer<S>> = Vec::with_capacity(avsg.len());
    for m in avsg {
        let a = answers.iter().find(|a| a.member == *m && a.as_of >= last)?;
        if found.first().is_some_and(|f| f.state.tag != a.state.tag) {
            return None;
        }
        found.push(a);
    }
    Some(Landed {
        state: found[0].state.clone(),
        stamps: found.iter().map(|a| a.stamp.clone()).collect(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use codetta_wire::{Attrs, ContentTag, FileType, Time, VersionVector, VolumeId};

    fn state(vnode: u64, tag: u8) -> ObjectState {
        ObjectState {
            fid: Fid {
                volume: VolumeId(1),
                vnode,
                unique: 1,
            },
            attrs: Attrs {
                ftype: FileType::Regular,
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: u64::from(tag),
                nlink: 1,
                atime: Time::default(),
                mtime: Time::default(),
                ctime: Time::default(),
            },
            version: VersionVector::default(),
            tag: ContentTag([tag; 32]),
        }
    }

    #[test]
    fn a_state_lands_once_every_member_answered_it_alike() {
        let mut l = Landing::default();
        let avsg = [0, 1, 2];
        assert!(
            l.offer(0, 5, &10, vec![state(7, 1)], &avsg, |_| 5)
                .is_empty()
        );
        assert!(
            l.offer(2, 5, &11, vec![state(7, 1)], &avsg, |_| 5)
                .is_empty()
        );
        let landed = l.offer(1, 6, &12, vec![state(7, 1)], &avsg, |_| 5);
        assert_eq!(landed.len(), 1);
        assert_eq!(landed[0].state, state(7, 1));
        assert_eq!(landed[0].stamps, vec![10, 12, 11]);
        // It stopped waiting: one more answer alone lands nothing.
        assert!(
            l.offer(1, 7, &13, vec![state(7, 1)], &avsg, |_| 5)
                .is_empty()
        );
    }

    #[test]
    fn differing_tags_or_older_answers_do_not_land() {
        let mut l = Landing::default();
        let avsg = [0, 1];
        l.offer(0, 5, &0, vec![state(7, 1)], &avsg, |_| 5);
        assert!(
            l.offer(1, 5, &0, vec![state(7, 2)], &avsg, |_| 5)
                .is_empty()
        );
        // Member 0 answers again, now alike: it lands.
        assert_eq!(l.offer(0, 6, &0, vec![state(7, 2)], &avsg, |_| 5).len(), 1);
        // A later record on the object: answers from before it do not count.
        l.offer(0, 8, &0, vec![state(8, 1)], &avsg, |_| 9);
        assert!(
            l.offer(1, 8, &0, vec![state(8, 1)], &avsg, |_| 9)
                .is_empty()
        );
        assert!(
            l.offer(0, 9, &0, vec![state(8, 1)], &avsg, |_| 9)
                .is_empty()
        );
        assert_eq!(l.offer(1, 9, &0, vec![state(8, 1)], &avsg, |_| 9).len(), 1);
    }

    #[test]
    fn a_lone_member_lands_at_once_and_the_waiting_stay_bounded() {
        let mut l = Landing::default();
        assert_eq!(l.offer(0, 1, &0, vec![state(1, 1)], &[0], |_| 0).len(), 1);
        for v in 0..(MAX_WAITING as u64 * 3) {
            l.offer(0, 1, &0, vec![state(v, 1)], &[0, 1], |_| 0);
        }
        assert!(l.waiting.len() <= MAX_WAITING);
        assert!(l.offer(0, 1, &0, vec![], &[], |_| 0).is_empty());
    }
}
