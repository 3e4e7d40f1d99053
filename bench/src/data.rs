//! Data written by the workloads: pseudo-random, with no two 4 KiB blocks alike (so neither
//! compression nor content-addressed deduplication flatters a figure), and cheap enough to
//! make that the bench client does not limit what it measures.

const BLOCK: usize = 4096;

/// Pseudo-random bytes from `seed` (xorshift): slow-ish, for small buffers and tests.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A 1 MiB random pattern stamped per 4 KiB block with the file and the offset: filling a
/// buffer costs one copy.
pub struct Pattern {
    base: Vec<u8>,
}

impl Default for Pattern {
    fn default() -> Self {
        Pattern {
            base: payload(0x5eed, 1 << 20),
        }
    }
}

impl Pattern {
    /// Fills `buf` with the bytes of file `file` at `offset`: the pattern, each 4 KiB block
    /// starting with the file number and its own offset.
    pub fn fill(&self, buf: &mut [u8], file: u64, offset: u64) {
        let start = (offset as usize) % self.base.len();
        let mut done = 0;
        while done < buf.len() {
            let from = (start + done) % self.base.len();
            let n = (buf.len() - done).min(self.base.len() - from);
            buf[done..done + n].copy_from_slice(&self.base[from..from + n]);
            done += n;
        }
        let mut block = 0;
        while block < buf.len() {
            let stamp_at = offset + block as u64;
            let end = (block + 16).min(buf.len());
            let mut stamp = [0u8; 16];
            stamp[..8].copy_from_slice(&file.to_le_bytes());
            stamp[8..].copy_from_slice(&stamp_at.to_le_bytes());
            buf[block..end].copy_from_slice(&stamp[..end - block]);
            block += BLOCK;
        }
    }

    /// Whether `buf`, read at `offset`, carries the stamps [`Pattern::fill`] gave file
    /// `file` (the file number and offset starting each 4 KiB block): a read that returns
    /// another file's bytes, or bytes from another offset, fails it.
    pub fn stamped(&self, buf: &[u8], file: u64, offset: u64) -> bool {
        let mut block = 0;
        while block < buf.len() {
            let mut stamp = [0u8; 16];
            stamp[..8].copy_from_slice(&file.to_le_bytes());
            stamp[8..].copy_from_slice(&(offset + block as u64).to_le_bytes());
            let end = (block + 16).min(buf.len());
            if buf[block..end] != stamp[..end - block] {
                return false;
            }
            block += BLOCK;
        }
        true
    }

    /// A new buffer of `len` bytes of file `file` at `offset`.
    pub fn bytes(&self, file: u64, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.fill(&mut buf, file, offset);
        buf
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn stamps_name_the_file_and_the_offset() {
        let p = Pattern::default();
        let buf = p.bytes(7, 1 << 20, 1 << 20);
        assert!(p.stamped(&buf, 7, 1 << 20));
        assert!(!p.stamped(&buf, 8, 1 << 20), "another file");
        assert!(!p.stamped(&buf, 7, (1 << 20) + 4096), "another offset");
        assert!(p.stamped(&buf[..100], 7, 1 << 20), "a short read");
    }

    #[test]
    fn no_two_blocks_alike_across_files_and_offsets() {
        let p = Pattern::default();
        let mut seen = std::collections::HashSet::new();
        for file in 0..3 {
            let buf = p.bytes(file, 0, 3 << 20);
            for block in buf.chunks(BLOCK) {
                assert!(seen.insert(block.to_vec()), "a repeated block");
            }
        }
    }

    #[test]
    fn a_fill_at_an_offset_matches_the_same_bytes_of_a_longer_fill() {
        let p = Pattern::default();
        let whole = p.bytes(9, 0, 2 << 20);
        let part = p.bytes(9, 4096 * 300, 8192);
        assert_eq!(part, whole[4096 * 300..4096 * 302]);
    }
}
