//! XDR (RFC 4506), the encoding of RPC headers and NFS arguments: big-endian 4-byte units,
//! variable-length data prefixed by its length and padded to a multiple of four.
//!
//! [`XdrReader`] reads from one received record. Every stated length is checked against
//! its bound and against the bytes left before anything is allocated or sliced, and
//! variable-length data comes back as a slice of the record (`Bytes`), not a copy.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Why XDR could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XdrError {
    /// The record ends before the item does.
    #[error("the record ends inside an item")]
    Short,
    /// A length over what the item allows.
    #[error("a length of {len} where at most {max} is allowed")]
    TooLong { len: u64, max: u64 },
    /// A value the type does not have (a boolean other than 0 or 1, say).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes left after the last item.
    #[error("{0} bytes after the last item")]
    Trailing(usize),
}

/// Reads XDR items from one record, front to back.
#[derive(Debug, Clone)]
pub struct XdrReader {
    buf: Bytes,
}

/// Padding after `len` bytes of variable-length data.
fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

impl XdrReader {
    pub fn new(buf: Bytes) -> XdrReader {
        XdrReader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// What is not read yet, as a slice of the record.
    pub fn rest(self) -> Bytes {
        self.buf
    }

    /// Succeeds only if every byte was read.
    pub fn finish(&self) -> Result<(), XdrError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(XdrError::Trailing(n)),
        }
    }

    pub fn u32(&mut self) -> Result<u32, XdrError> {
        if self.buf.len() < 4 {
            return Err(XdrError::Short);
        }
        Ok(self.buf.get_u32())
    }

    pub fn u64(&mut self) -> Result<u64, XdrError> {
        if self.buf.len() < 8 {
            return Err(XdrError::Short);
        }
        Ok(self.buf.get_u64())
    }

    pub fn bool(&mut self) -> Result<bool, XdrError> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(XdrError::Invalid("boolean")),
        }
    }

    /// `n` bytes of fixed-length opaque data (and their padding).
    pub fn fixed(&mut self, n: usize) -> Result<Bytes, XdrError> {
        let padded = n.checked_add(padding(n)).ok_or(XdrError::Short)?;
        if self.buf.len() < padded {
            return Err(XdrError::Short);
        }
        let data = self.buf.split_to(n);
        self.buf.advance(padded - n);
        Ok(data)
    }

    /// Variable-length opaque data of at most `max` bytes (a string is the same on the
    /// wire), as a slice of the record.
    pub fn opaque(&mut self, max: usize) -> Result<Bytes, XdrError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(XdrError::TooLong {
                len: len as u64,
                max: max as u64,
            });
        }
        self.fixed(len)
    }

    /// A counted array of at most `max` unsigned integers. The count is checked against
    /// the bytes left before the array is allocated.
    pub fn u32_array(&mut self, max: usize) -> Result<Vec<u32>, XdrError> {
        let count = self.u32()? as usize;
        if count > max {
            return Err(XdrError::TooLong {
                len: count as u64,
                max: max as u64,
            });
        }
        if count.saturating_mul(4) > self.buf.len() {
            return Err(XdrError::Short);
        }
        (0..count).map(|_| self.u32()).collect()
    }
}

/// Writes XDR items into a growing buffer.
#[derive(Debug, Default)]
pub struct XdrWriter {
    buf: BytesMut,
}

impl XdrWriter {
    pub fn new() -> XdrWriter {
        XdrWriter::default()
    }

    /// Continues `buf` (a reply header written before, say).
    pub fn from_buf(buf: BytesMut) -> XdrWriter {
        XdrWriter { buf }
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.put_u32(v);
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.put_u64(v);
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u32(u32::from(v))
    }

    /// Fixed-length opaque data and its padding.
    pub fn fixed(&mut self, data: &[u8]) -> &mut Self {
        self.buf.put_slice(data);
        self.buf.put_bytes(0, padding(data.len()));
        self
    }

    /// Variable-length opaque data (its length, the bytes, the padding). Longer than
    /// `u32::MAX` bytes cannot be said in XDR: callers bound what they write far below.
    pub fn opaque(&mut self, data: &[u8]) -> &mut Self {
        self.u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
        self.fixed(data)
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_inner(self) -> BytesMut {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stated_lengths_are_checked_before_anything_is_taken() {
        // A length of 4 GiB - 1 in a 12-byte record: refused, nothing allocated.
        let mut r = XdrReader::new(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]));
        assert!(matches!(r.opaque(1 << 20), Err(XdrError::TooLong { .. })));
        let mut r = XdrReader::new(Bytes::from_static(&[0, 0, 0, 9, 1, 2, 3, 4]));
        assert_eq!(r.opaque(1 << 20), Err(XdrError::Short));
        // An array count past the bytes there.
        let mut r = XdrReader::new(Bytes::from_static(&[0, 0, 0, 3, 0, 0, 0, 1]));
        assert_eq!(r.u32_array(16), Err(XdrError::Short));
        let mut r = XdrReader::new(Bytes::from_static(&[0, 0, 0, 17]));
        assert!(matches!(r.u32_array(16), Err(XdrError::TooLong { .. })));
        let mut r = XdrReader::new(Bytes::from_static(&[0, 0, 0, 2]));
        assert_eq!(r.bool(), Err(XdrError::Invalid("boolean")));
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back(
            a in any::<u32>(),
            b in any::<u64>(),
            flag in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 0..40),
            ids in proptest::collection::vec(any::<u32>(), 0..16),
        ) {
            let mut w = XdrWriter::new();
            w.u32(a).u64(b).bool(flag).opaque(&data).u32(ids.len() as u32);
            for id in &ids {
                w.u32(*id);
            }
            let bytes = w.into_inner().freeze();
            prop_assert_eq!(bytes.len() % 4, 0);
            let mut r = XdrReader::new(bytes.clone());
            prop_assert_eq!(r.u32(), Ok(a));
            prop_assert_eq!(r.u64(), Ok(b));
            prop_assert_eq!(r.bool(), Ok(flag));
            prop_assert_eq!(r.opaque(40).map(|d| d.to_vec()), Ok(data.clone()));
            prop_assert_eq!(r.u32_array(16), Ok(ids));
            prop_assert_eq!(r.finish(), Ok(()));
            // Every prefix either reads or says it is short: never a panic.
            for cut in 0..bytes.len() {
                let mut r = XdrReader::new(bytes.slice(..cut));
                let _ = (r.u32(), r.u64(), r.bool(), r.opaque(40), r.u32_array(16));
            }
        }
    }
}
