//! Bytes a local process sends to the NFS port, read as the front end reads them: records
//! reassembled (in reads of a size the first byte picks), calls decoded, NFSv3 and MOUNT
//! arguments decoded.
//! Never a panic, a record never past its bound, and the reader never holding more than a
//! record and one read.
#![no_main]

use codetta_oncrpc::{RecordLimits, RecordReader, XdrReader, decode_call, nfs3};
use libfuzzer_sys::fuzz_target;

const LIMITS: RecordLimits = RecordLimits {
    max_record: 4096,
    max_fragments: 64,
};

fuzz_target!(|input: &[u8]| {
    let Some((&step, bytes)) = input.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut reader = RecordReader::new(LIMITS);
    for piece in bytes.chunks(step) {
        reader.push(piece);
        loop {
            match reader.next_record() {
                Ok(Some(record)) => {
                    assert!(record.len() <= LIMITS.max_record);
                    if let Ok(call) = decode_call(record) {
                        // As the front end would: NFS or MOUNT arguments by procedure
                        // (the program number picks), and raw XDR reads.
                        if call.prog % 2 == 0 {
                            let _ = nfs3::decode_nfs(call.proc % 24, call.args.clone(), 2048);
                        } else {
                            let _ = nfs3::decode_mount(call.proc % 8, call.args.clone());
                        }
                        let mut args = XdrReader::new(call.args);
                        let _ = args.opaque(1024);
                        let _ = args.u32_array(16);
                        let _ = args.u64();
                        let _ = args.bool();
                        let _ = args.fixed(8);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(reader.held() <= LIMITS.max_record + step + 4);
    }
});
