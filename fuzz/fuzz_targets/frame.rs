//! Bytes from the network into the frame decoder: never a panic, and whatever decodes
//! re-encodes to the same bytes.
#![no_main]

use codetta_wire::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(Some((frame, used))) = Frame::decode(bytes) {
        assert_eq!(&frame.encode()[..], &bytes[..used]);
        if let Ok(request) = frame.decode_request() {
            let again = Frame::request(&request, frame.data.clone()).expect("re-encode request");
            assert_eq!(again.decode_request().ok(), Some(request));
        }
        if let Ok(reply) = frame.decode_reply() {
            let again = Frame::reply(&reply, frame.data.clone()).expect("re-encode reply");
            assert_eq!(again.decode_reply().ok(), Some(reply));
        }
    }
});
