//! Record marking (RFC 5531 section 11): on a TCP connection each RPC message is a record
//! sent as one or more fragments, each behind a 4-byte mark (the top bit: last fragment;
//! the other 31 bits: its length).
//!
//! [`RecordReader`] reassembles records from the bytes as they arrive, with no I/O. What
//! must hold: it holds at most the bytes the peer really sent, never more than
//! [`RecordLimits::max_record`] of one record plus one read, whatever the marks claim; a
//! record or a chain of fragments past the bound, or more fragments than
//! [`RecordLimits::max_fragments`], is an error after which the connection is closed (its
//! framing can no longer be trusted).

use bytes::{Buf, Bytes, BytesMut};

/// The bounds a connection's records are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Largest record, in bytes (the largest call: a WRITE of the largest size the server
    /// announces plus its headers).
    pub max_record: usize,
    /// Most fragments one record may come in (empty ones count).
    pub max_fragments: usize,
}

/// A peer broke the framing's bounds: close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("a record of more than {max} bytes (a fragment claims {claimed} after {held} held)")]
    TooLarge {
        claimed: u64,
        held: usize,
        max: usize,
    },
    #[error("a record in more than {max} fragments")]
    TooManyFragments { max: usize },
}

/// The top bit of a fragment mark: this fragment ends the record.
const LAST_FRAGMENT: u32 = 1 << 31;

/// Reassembles the records of one connection.
#[derive(Debug)]
pub struct RecordReader {
    limits: RecordLimits,
    /// Bytes received and not yet taken into a record.
    input: BytesMut,
    /// The record being assembled from earlier fragments.
    record: BytesMut,
    /// Fragments of the record so far.
    fragments: usize,
    /// The fragment being read: bytes still to come and whether it is the last one.
    fragment: Option<(usize, bool)>,
}

/// Encodes the mark of a record sent as one fragment of `len` bytes.
pub fn single_fragment_mark(len: u32) -> [u8; 4] {
    (len | LAST_FRAGMENT).to_be_bytes()
}

impl RecordReader {
    pub fn new(limits: RecordLimits) -> RecordReader {
        RecordReader {
            limits,
            input: BytesMut::new(),
            record: BytesMut::new(),
            fragments: 0,
            fragment: None,
        }
    }

    /// Bytes held for records not complete yet (what this connection costs in memory).
    pub fn held(&self) -> usize {
        self.input.len() + self.record.len()
    }

    /// Takes bytes read from the connection. The caller reads in bounded pieces; what
    /// they make of them is checked by [`RecordReader::next_record`], which must be
    /// called until it returns `Ok(None)` before more bytes are pushed.
    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The next complete record, `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, RecordError> {
        loop {
            let (left, last) = match self.fragment {
                Some(f) => f,
                None => {
                    if self.input.len() < 4 {
                        return Ok(None);
                    }
                    let mark = self.input.get_u32();
                    let len = (mark & !LAST_FRAGMENT) as usize;
                    let held = self.record.len();
                    if held.saturating_add(len) > self.limits.max_record {
                        return Err(RecordError::TooLarge {
                            claimed: len as u64,
                            held,
                            max: self.limits.max_record,
                        });
                    }
                    self.fragments += 1;
                    if self.fragments > self.limits.max_fragments {
                        return Err(RecordError::TooManyFragments {
                            max: self.limits.max_fragments,
                        });
                    }
                    let f = (len, mark & LAST_FRAGMENT != 0);
                    self.fragment = Some(f);
                    f
                }
            };
            // A whole record in one fragment, all here: handed over without a copy.
            if last && self.record.is_empty() && self.input.len() >= left {
                let record = self.input.split_to(left).freeze();
                self.finish_record();
                return Ok(Some(record));
            }
            let take = left.min(self.input.len());
            self.record.extend_from_slice(&self.input.split_to(take));
            if take < left {
                self.fragment = Some((left - take, last));
                return Ok(None);
            }
            self.fragment = None;
            if last {
                let record = std::mem::take(&mut self.record).freeze();
                self.finish_record();
                return Ok(Some(record));
            }
        }
    }

    fn finish_record(&mut self) {
        self.fragment = None;
        self.fragments = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    const LIMITS: RecordLimits = RecordLimits {
        max_record: 1000,
        max_fragments: 8,
    };

    /// `records`, each cut into fragments of at most `frag` bytes.
    fn encode(records: &[Vec<u8>], frag: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            let pieces: Vec<&[u8]> = if r.is_empty() {
                vec![&r[..]]
            } else {
                r.chunks(frag).collect()
            };
            for (i, p) in pieces.iter().enumerate() {
                let mut mark = p.len() as u32;
                if i + 1 == pieces.len() {
                    mark |= LAST_FRAGMENT;
                }
                out.extend_from_slice(&mark.to_be_bytes());
                out.extend_from_slice(p);
            }
        }
        out
    }

    fn read_all(
        reader: &mut RecordReader,
        bytes: &[u8],
        step: usize,
    ) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut out = Vec::new();
        for piece in bytes.chunks(step.max(1)) {
            reader.push(piece);
            while let Some(r) = reader.next_record()? {
                out.push(r.to_vec());
            }
        }
        Ok(out)
    }

    #[test]
    fn a_claimed_size_past_the_bound_is_refused_before_anything_is_held() {
        let mut reader = RecordReader::new(LIMITS);
        // A mark claiming 2 GiB, then a little garbage.
        reader.push(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert!(matches!(
            reader.next_record(),
            Err(RecordError::TooLarge { .. })
        ));
        assert!(reader.held() <= 7);
        // Fragments that are each small but add up past the bound.
        let mut reader = RecordReader::new(LIMITS);
        let chain = [600u32, 600].map(|n| {
            let mut f = n.to_be_bytes().to_vec();
            f.extend(std::iter::repeat_n(0u8, n as usize));
            f
        });
        reader.push(&chain.concat());
        assert!(matches!(
            reader.next_record(),
            Err(RecordError::TooLarge { held: 600, .. })
        ));
        // Empty fragments forever: refused once past the count.
        let mut reader = RecordReader::new(LIMITS);
        reader.push(&[0u8; 4 * 9]);
        assert_eq!(
            reader.next_record(),
            Err(RecordError::TooManyFragments { max: 8 })
        );
    }

    #[test]
    fn memory_follows_the_bytes_sent_not_the_marks() {
        let mut reader = RecordReader::new(LIMITS);
        reader.push(&(1000u32 | LAST_FRAGMENT).to_be_bytes());
        reader.push(&[7; 10]);
        assert_eq!(reader.next_record(), Ok(None));
        assert!(reader.held() <= 10, "held {}", reader.held());
    }

    proptest! {
        #[test]
        fn records_come_back_whole_however_the_bytes_arrive(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            frag in 1usize..200,
            step in 1usize..64,
        ) {
            let limits = RecordLimits { max_record: 300, max_fragments: 301 };
            let bytes = encode(&records, frag);
            let mut reader = RecordReader::new(limits);
            prop_assert_eq!(read_all(&mut reader, &bytes, step), Ok(records));
            prop_assert_eq!(reader.held(), 0);
        }

        #[test]
        fn garbage_never_panics_and_holds_at_most_what_was_sent(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000),
            step in 1usize..512,
        ) {
            let mut reader = RecordReader::new(LIMITS);
            let mut sent = 0;
            for piece in bytes.chunks(step) {
                reader.push(piece);
                sent += piece.len();
                loop {
                    match reader.next_record() {
                        Ok(Some(r)) => prop_assert!(r.len() <= LIMITS.max_record),
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                prop_assert!(reader.held() <= sent);
                prop_assert!(reader.held() <= LIMITS.max_record + step + 4);
            }
        }
    }
}
