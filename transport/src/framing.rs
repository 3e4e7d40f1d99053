//! One frame per stream direction, read and written in parts.

use crate::TransportError;
use bytes::{Bytes, BytesMut};
use codetta_wire::frame::{FramePrefix, MAX_DATA, MAX_HEADER, PREFIX_LEN};
use codetta_wire::{Frame, FrameError, FrameKind, Payload};
use std::time::Duration;

/// Writes `frame` as prefix, header and data without copying them into one buffer. The caller
/// finishes the stream afterwards (one frame per stream).
pub async fn write_frame(
    send: &mut quinn::SendStream,
    frame: &Frame,
) -> Result<(), TransportError> {
    if frame.header.len() > MAX_HEADER as usize || frame.data.len() > MAX_DATA as usize {
        return Err(FrameError::TooLarge.into());
    }
    let prefix = Bytes::copy_from_slice(&frame.prefix().to_bytes());
    let mut parts: Vec<Bytes> = [prefix, frame.header.clone()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .chain(frame.data.parts().iter().cloned())
        .collect();
    send.write_all_chunks(&mut parts).await?;
    Ok(())
}

/// Reads exactly one frame and then the end of the stream.
///
/// The prefix is checked (version, kind, header ≤ `MAX_HEADER`, data ≤ `MAX_DATA`) before
/// anything is allocated; header and data are then collected as they arrive, so memory held
/// never exceeds what the peer actually sent plus what the prefix claimed. Bytes after the
/// frame are an error ([`TransportError::TrailingBytes`]), as is an early end
/// ([`TransportError::Truncated`]).
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Frame, TransportError> {
    let mut prefix = [0u8; PREFIX_LEN];
    recv.read_exact(&mut prefix).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(got) => TransportError::Truncated {
            missing: PREFIX_LEN - got,
        },
        quinn::ReadExactError::ReadError(e) => TransportError::Read(e),
    })?;
    let prefix = FramePrefix::parse(&prefix)?.ok_or(TransportError::Truncated { missing: 0 })?;
    let header = read_exactly(recv, prefix.header_len as usize)
        .await?
        .contiguous();
    let data = read_exactly(recv, prefix.data_len as usize).await?;
    if recv.read_chunk(1, true).await?.is_some() {
        return Err(TransportError::TrailingBytes);
    }
    Ok(Frame {
        kind: prefix.kind,
        header,
        data,
    })
}

/// Chunks smaller than this are joined as they arrive: a peer sending many tiny stream
/// frames cannot make a frame a long list of parts, each holding a received datagram.
const MIN_PART: usize = 16 << 10;

/// Reads exactly `len` bytes, kept in the chunks they arrived in (not copied) unless they
/// are small (then joined into parts of [`MIN_PART`] or more): at most `2 * len /
/// MIN_PART + 1` parts.
async fn read_exactly(recv: &mut quinn::RecvStream, len: usize) -> Result<Payload, TransportError> {
    let mut out = Payload::new();
    let mut small = BytesMut::new();
    let mut got = 0;
    while got < len {
        let Some(chunk) = recv.read_chunk(len - got, true).await? else {
            return Err(TransportError::Truncated { missing: len - got });
        };
        got += chunk.bytes.len();
        if chunk.bytes.len() < MIN_PART {
            small.extend_from_slice(&chunk.bytes);
            if small.len() >= MIN_PART {
                out.push(small.split().freeze());
            }
        } else {
            out.push(small.split().freeze());
            out.push(chunk.bytes);
        }
    }
    out.push(small.freeze());
    Ok(out)
}

/// One request/reply exchange on a fresh bidirectional stream, all within `deadline`: opens
/// the stream, writes `request`, finishes, and reads one reply frame (which must be of kind
/// [`FrameKind::Reply`]).
pub async fn call(
    conn: &quinn::Connection,
    request: &Frame,
    deadline: Duration,
) -> Result<Frame, TransportError> {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, request).await?;
        send.finish()?;
        let reply = read_frame(&mut recv).await?;
        if reply.kind != FrameKind::Reply {
            return Err(FrameError::WrongKind {
                expected: FrameKind::Reply,
            }
            .into());
        }
        Ok(reply)
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| TransportError::Timeout(deadline))?
}
