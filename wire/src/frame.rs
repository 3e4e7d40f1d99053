//! The frame format: one request or one reply per QUIC stream.
//!
//! ```text
//! offset size field
//! 0      1    format version (1)
//! 1      1    kind: 1 = request, 2 = reply
//! 2      4    header length H, big-endian, at most MAX_HEADER
//! 6      4    data length D, big-endian, at most MAX_DATA
//! 10     H    header: a postcard-encoded Request or Reply
//! 10+H   D    data: raw file bytes (WRITE payloads in record order, or READ bytes)
//! ```
//!
//! Decoding checks the prefix before anything is allocated, tells an incomplete frame from
//! an invalid one, and rejects trailing bytes inside the header.

use crate::message::{Reply, Request};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

/// The only frame format version so far.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the header.
pub const PREFIX_LEN: usize = 10;
/// Largest header accepted (a directory page or a batch of records).
pub const MAX_HEADER: u32 = 4 << 20;
/// Largest data section accepted (a batch of writes).
pub const MAX_DATA: u32 = 32 << 20;

/// Whether a frame is a call or an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A request, sent by the caller.
    Request = 1,
    /// A reply, sent by the server.
    Reply = 2,
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first byte names a format other than [`FRAME_VERSION`].
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The kind byte is neither 1 (request) nor 2 (reply).
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// The prefix announces a header longer than [`MAX_HEADER`] bytes.
    #[error("header of {0} bytes exceeds the limit of {MAX_HEADER}")]
    HeaderTooLarge(u32),
    /// The prefix announces a data section longer than [`MAX_DATA`] bytes.
    #[error("data of {0} bytes exceeds the limit of {MAX_DATA}")]
    DataTooLarge(u32),
    /// A frame of the other kind than the one expected.
    #[error("expected a {expected:?} frame")]
    WrongKind {
        /// The kind the caller asked to decode.
        expected: FrameKind,
    },
    /// The header does not decode as the expected message, or a message failed to encode.
    #[error("undecodable header: {0}")]
    Header(String),
    /// The header holds this many bytes after the message.
    #[error("{0} trailing bytes after the header's message")]
    TrailingBytes(usize),
    /// The data section is not as long as the request says it should be.
    #[error("data section is {actual} bytes but the message accounts for {expected}")]
    DataLength {
        /// Bytes the request's records or chunks account for.
        expected: usize,
        /// Bytes the data section holds.
        actual: usize,
    },
    /// A message or data section past [`MAX_HEADER`] or [`MAX_DATA`] on encoding, or a
    /// request whose data length cannot be worked out ([`Request::data_len`] is `None`).
    #[error("message too large to encode")]
    TooLarge,
}

/// The fixed-size start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePrefix {
    /// Request or reply.
    pub kind: FrameKind,
    /// Header length in bytes.
    pub header_len: u32,
    /// Data section length in bytes.
    pub data_len: u32,
}

impl FramePrefix {
    /// Parses and checks a prefix; `Ok(None)` if fewer than [`PREFIX_LEN`] bytes are given.
    pub fn parse(buf: &[u8]) -> Result<Option<FramePrefix>, FrameError> {
        let Some(prefix) = buf.get(..PREFIX_LEN) else {
            return Ok(None);
        };
        if prefix[0] != FRAME_VERSION {
            return Err(FrameError::Version(prefix[0]));
        }
        let kind = match prefix[1] {
            1 => FrameKind::Request,
            2 => FrameKind::Reply,
            other => return Err(FrameError::Kind(other)),
        };
        let header_len = u32::from_be_bytes([prefix[2], prefix[3], prefix[4], prefix[5]]);
        let data_len = u32::from_be_bytes([prefix[6], prefix[7], prefix[8], prefix[9]]);
        if header_len > MAX_HEADER {
            return Err(FrameError::HeaderTooLarge(header_len));
        }
        if data_len > MAX_DATA {
            return Err(FrameError::DataTooLarge(data_len));
        }
        Ok(Some(FramePrefix {
            kind,
            header_len,
            data_len,
        }))
    }

    /// The encoded prefix.
    pub fn to_bytes(&self) -> [u8; PREFIX_LEN] {
        let mut out = [0u8; PREFIX_LEN];
        out[0] = FRAME_VERSION;
        out[1] = self.kind as u8;
        out[2..6].copy_from_slice(&self.header_len.to_be_bytes());
        out[6..10].copy_from_slice(&self.data_len.to_be_bytes());
        out
    }

    /// Total frame length including the prefix.
    pub fn frame_len(&self) -> usize {
        PREFIX_LEN + self.header_len as usize + self.data_len as usize
    }
}

/// A frame's data section as the buffers it was built from or arrived in, sent and kept
/// back to back: a batch's write payloads travel without being copied into one buffer.
#[derive(Debug, Clone, Default)]
pub struct Payload {
    parts: Vec<Bytes>,
    len: usize,
}

impl Payload {
    /// No data.
    pub fn new() -> Payload {
        Payload::default()
    }

    /// Appends `part` (an empty one is dropped).
    pub fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    /// Bytes in all parts.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The parts, in order, none empty.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The data as one buffer, letting go of the parts (so a joined copy is not held
    /// beside them).
    pub fn into_contiguous(self) -> Bytes {
        match self.parts.len() {
            1 => self.parts.into_iter().next().unwrap_or_default(),
            _ => self.contiguous(),
        }
    }

    /// The data as one buffer: free for a single part, one copy otherwise.
    pub fn contiguous(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut out = bytes::BytesMut::with_capacity(self.len);
                for part in many {
                    out.extend_from_slice(part);
                }
                out.freeze()
            }
        }
    }
}

impl From<Bytes> for Payload {
    fn from(part: Bytes) -> Payload {
        let mut p = Payload::new();
        p.push(part);
        p
    }
}

impl FromIterator<Bytes> for Payload {
    fn from_iter<I: IntoIterator<Item = Bytes>>(parts: I) -> Payload {
        let mut p = Payload::new();
        for part in parts {
            p.push(part);
        }
        p
    }
}

/// Equal bytes, however they are split into parts.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.len == other.len
            && self
                .parts
                .iter()
                .flat_map(|p| p.iter())
                .eq(other.parts.iter().flat_map(|p| p.iter()))
    }
}

impl Eq for Payload {}

/// A decoded (or to-be-encoded) frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Request or reply.
    pub kind: FrameKind,
    /// The postcard-encoded [`Request`] or [`Reply`].
    pub header: Bytes,
    /// The data section: write payloads of a request, or the bytes a reply carries.
    pub data: Payload,
}

impl Frame {
    fn encode_message<T: Serialize>(
        kind: FrameKind,
        message: &T,
        data: Payload,
    ) -> Result<Frame, FrameError> {
        let header =
            postcard::to_allocvec(message).map_err(|e| FrameError::Header(e.to_string()))?;
        if header.len() > MAX_HEADER as usize || data.len() > MAX_DATA as usize {
            return Err(FrameError::TooLarge);
        }
        Ok(Frame {
            kind,
            header: Bytes::from(header),
            data,
        })
    }

    /// A request frame; `data` carries write payloads in record order.
    pub fn request(request: &Request, data: impl Into<Payload>) -> Result<Frame, FrameError> {
        Self::encode_message(FrameKind::Request, request, data.into())
    }

    /// A reply frame; `data` carries READ bytes.
    pub fn reply(reply: &Reply, data: impl Into<Payload>) -> Result<Frame, FrameError> {
        Self::encode_message(FrameKind::Reply, reply, data.into())
    }

    /// The prefix describing this frame.
    pub fn prefix(&self) -> FramePrefix {
        FramePrefix {
            kind: self.kind,
            header_len: u32::try_from(self.header.len()).unwrap_or(u32::MAX),
            data_len: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
        }
    }

    /// The whole frame as one buffer (tests and small frames; streams write the parts).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix().frame_len());
        out.extend_from_slice(&self.prefix().to_bytes());
        out.extend_from_slice(&self.header);
        for part in self.data.parts() {
            out.extend_from_slice(part);
        }
        out
    }

    /// Decodes one frame from the start of `buf`: `Ok(None)` if more bytes are needed,
    /// otherwise the frame and how many bytes it used.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let Some(prefix) = FramePrefix::parse(buf)? else {
            return Ok(None);
        };
        let len = prefix.frame_len();
        if buf.len() < len {
            return Ok(None);
        }
        let header_end = PREFIX_LEN + prefix.header_len as usize;
        let frame = Frame {
            kind: prefix.kind,
            header: Bytes::copy_from_slice(&buf[PREFIX_LEN..header_end]),
            data: Payload::from(Bytes::copy_from_slice(&buf[header_end..len])),
        };
        Ok(Some((frame, len)))
    }

    fn decode_message<T: DeserializeOwned>(&self, expected: FrameKind) -> Result<T, FrameError> {
        if self.kind != expected {
            return Err(FrameError::WrongKind { expected });
        }
        let (message, rest) = postcard::take_from_bytes::<T>(&self.header)
            .map_err(|e| FrameError::Header(e.to_string()))?;
        if !rest.is_empty() {
            return Err(FrameError::TrailingBytes(rest.len()));
        }
        Ok(message)
    }

    /// Decodes a request and checks that the data section matches it exactly.
    pub fn decode_request(&self) -> Result<Request, FrameError> {
        let request: Request = self.decode_message(FrameKind::Request)?;
        let expected = request.data_len().ok_or(FrameError::TooLarge)?;
        if expected != self.data.len() {
            return Err(FrameError::DataLength {
                expected,
                actual: self.data.len(),
            });
        }
        Ok(request)
    }

    /// Decodes a reply.
    pub fn decode_reply(&self) -> Result<Reply, FrameError> {
        self.decode_message(FrameKind::Reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attrs::{Attrs, FileType, SetAttrs, Time};
    use crate::ids::{Fid, Incarnation, UpdateId, VolumeId};
    use crate::message::{DirEntry, ObjectState, ReplyBody};
    use crate::name::Name;
    use crate::update::{CreateHow, Follows, NewObject, Op, UpdateRecord};
    use crate::version::VersionVector;

    fn name(s: &str) -> Name {
        Name::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_payload_in_parts_is_the_same_bytes_as_one_buffer() {
        let parts: Payload = [&b"ab"[..], b"", b"cde", b"f"]
            .into_iter()
            .map(Bytes::from_static)
            .collect();
        assert_eq!((parts.len(), parts.parts().len()), (6, 3));
        let whole = Payload::from(Bytes::from_static(b"abcdef"));
        assert_eq!(parts, whole);
        assert_eq!(parts.contiguous(), Bytes::from_static(b"abcdef"));
        assert_eq!(
            parts.clone().into_contiguous(),
            Bytes::from_static(b"abcdef")
        );
        assert_ne!(parts, Payload::from(Bytes::from_static(b"abcdeg")));
        // A frame built from parts encodes and decodes as if built from one buffer.
        let reply: Reply = Ok(ReplyBody::Done);
        let a = Frame::reply(&reply, parts).unwrap_or_else(|e| panic!("{e}"));
        let b = Frame::reply(&reply, whole).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.encode(), b.encode());
        let (back, _) = Frame::decode(&a.encode())
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("incomplete"));
        assert_eq!(back, a);
    }

    fn fid(n: u64) -> Fid {
        Fid {
            volume: VolumeId(1),
            vnode: n,
            unique: 3,
        }
    }

    fn sample_requests() -> Vec<(Request, Bytes)> {
        let rec = |seq, op| UpdateRecord {
            id: UpdateId {
                incarnation: Incarnation(2),
                seq,
            },
            time: Time { secs: 5, nanos: 6 },
            op,
        };
        let new = NewObject {
            mode: 0o644,
            uid: 1,
            gid: 2,
        };
        let ship = Request::Ship {
            follows: vec![
                Follows::default(),
                Follows {
                    object: Some(1),
                    replaced: Some(2),
                },
            ],
            records: vec![
                rec(
                    1,
                    Op::Create {
                        dir: fid(1),
                        name: name("a"),
                        fid: fid(9),
                        new,
                        how: CreateHow::Exclusive([1; 8]),
                    },
                ),
                rec(
                    2,
                    Op::Write {
                        fid: fid(9),
                        offset: 10,
                        len: 4,
                        hashes: crate::update::piece_hashes(0, b"abcd"),
                    },
                ),
                rec(
                    3,
                    Op::SetAttr {
                        fid: fid(9),
                        set: SetAttrs {
                            size: Some(1),
                            ..SetAttrs::default()
                        },
                    },
                ),
                rec(
                    4,
                    Op::Rename {
                        from_dir: fid(1),
                        from_name: name("a"),
                        to_dir: fid(1),
                        to_name: name("b"),
                        fid: fid(9),
                        replaces: None,
                    },
                ),
            ],
            log_start: 1,
            cop2: vec![crate::update::Cop2 {
                incarnation: Incarnation(1),
                volume: VolumeId(1),
                first: 1,
                last: 1,
                applied_by: vec![crate::ids::ReplicaId(3)],
            }],
        };
        vec![
            (Request::Hello, Bytes::new()),
            (
                Request::Lookup {
                    dir: fid(1),
                    name: name("x"),
                },
                Bytes::new(),
            ),
            (ship, Bytes::from_static(b"abcd")),
        ]
    }

    fn sample_reply() -> Reply {
        let state = ObjectState {
            fid: fid(1),
            attrs: Attrs {
                ftype: FileType::Directory,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: 1,
                nlink: 2,
                atime: Time::default(),
                mtime: Time::default(),
                ctime: Time::default(),
            },
            version: VersionVector::new(),
            tag: Default::default(),
        };
        Ok(ReplyBody::Dir {
            dir: state.clone(),
            entries: vec![DirEntry {
                name: name("e"),
                cookie: 7,
                fid: fid(2),
                state: Some(state),
            }],
            eof: true,
        })
    }

    #[test]
    fn requests_round_trip_at_every_split() {
        for (request, data) in sample_requests() {
            let bytes = Frame::request(&request, data)
                .unwrap_or_else(|e| panic!("{e}"))
                .encode();
            for split in 0..bytes.len() {
                assert_eq!(Frame::decode(&bytes[..split]), Ok(None), "split {split}");
            }
            let (frame, used) = Frame::decode(&bytes)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("complete frame"));
            assert_eq!(used, bytes.len());
            assert_eq!(frame.decode_request(), Ok(request));
        }
    }

    #[test]
    fn every_truncated_header_is_an_error_not_a_panic() {
        let reply = sample_reply();
        let frame = Frame::reply(&reply, Bytes::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(frame.decode_reply(), Ok(reply));
        for cut in 0..frame.header.len() {
            let truncated = Frame {
                header: frame.header.slice(..cut),
                ..frame.clone()
            };
            assert!(truncated.decode_reply().is_err(), "cut {cut}");
        }
        for (request, data) in sample_requests() {
            let frame = Frame::request(&request, data).unwrap_or_else(|e| panic!("{e}"));
            for cut in 0..frame.header.len() {
                let truncated = Frame {
                    header: frame.header.slice(..cut),
                    ..frame.clone()
                };
                assert!(truncated.decode_request().is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn huge_lengths_are_refused_from_the_prefix() {
        let mut prefix = FramePrefix {
            kind: FrameKind::Request,
            header_len: 0,
            data_len: 0,
        }
        .to_bytes();
        prefix[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Frame::decode(&prefix),
            Err(FrameError::HeaderTooLarge(u32::MAX))
        );
        prefix[2..6].copy_from_slice(&0u32.to_be_bytes());
        prefix[6..10].copy_from_slice(&(MAX_DATA + 1).to_be_bytes());
        assert_eq!(
            Frame::decode(&prefix),
            Err(FrameError::DataTooLarge(MAX_DATA + 1))
        );
        prefix[0] = 9;
        assert_eq!(Frame::decode(&prefix), Err(FrameError::Version(9)));
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the decoder, and whatever decodes re-encodes equal.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(Some((frame, used))) = Frame::decode(&bytes) {
                proptest::prop_assert_eq!(&frame.encode()[..], &bytes[..used]);
                let _ = frame.decode_request();
                let _ = frame.decode_reply();
            }
        }

        /// Valid prefixes followed by garbage headers decode to errors, not panics.
        #[test]
        fn garbage_headers_never_panic(header in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            for kind in [FrameKind::Request, FrameKind::Reply] {
                let frame = Frame { kind, header: Bytes::from(header.clone()), data: Payload::new() };
                let _ = frame.decode_request();
                let _ = frame.decode_reply();
            }
        }
    }

    #[test]
    fn trailing_header_bytes_and_wrong_data_length_are_refused() {
        let frame = Frame::request(&Request::Hello, Bytes::new()).unwrap_or_else(|e| panic!("{e}"));
        let mut header = frame.header.to_vec();
        header.push(0);
        let padded = Frame {
            header: Bytes::from(header),
            ..frame.clone()
        };
        assert_eq!(padded.decode_request(), Err(FrameError::TrailingBytes(1)));
        let with_data = Frame {
            data: Bytes::from_static(b"x").into(),
            ..frame
        };
        assert!(matches!(
            with_data.decode_request(),
            Err(FrameError::DataLength { .. })
        ));
        let reply = Frame::reply(&Ok(ReplyBody::Hello { server: "s".into() }), Bytes::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            reply.decode_request(),
            Err(FrameError::WrongKind { .. })
        ));
    }

    #[test]
    fn deeply_nested_envelopes_are_refused_without_recursing() {
        // The inner call is bytes, decoded one level at a time: depth costs nothing, and
        // an envelope inside an envelope is refused.
        let mut request = Request::Hello;
        for _ in 0..3 {
            request = Request::in_volume(crate::VolumeId(2), 1, &request);
        }
        let frame = Frame::request(&request, Bytes::new()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            frame.decode_request().is_err(),
            "a nested envelope is malformed"
        );
        let one = Request::in_volume(crate::VolumeId(2), 1, &Request::Hello);
        let frame = Frame::request(&one, Bytes::new()).unwrap_or_else(|e| panic!("{e}"));
        let decoded = frame.decode_request().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            decoded.open_envelope(),
            Ok((Some((crate::VolumeId(2), 1)), Request::Hello))
        );
    }
}
