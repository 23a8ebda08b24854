//! The spool's record codec (`spool::record`): what a replay reads from a damaged or hostile
//! segment file.
//!
//! Input: arbitrary bytes, walked as a segment body: `check` at each position, `decode` of
//! every record that checks, resynchronisation at the next magic otherwise.
//!
//! Checks besides "never panics": a record that checks decodes, and re-encoding the decoded
//! entry with the same sequence number and time gives back exactly the record's bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pyrogate::spool::record;

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    while at < data.len() {
        match record::check(&data[at..], 1 << 20) {
            Ok(h) => {
                let rec = Bytes::copy_from_slice(&data[at..at + h.record_len()]);
                if let Ok(e) = record::decode(&rec) {
                    let mut again = Vec::new();
                    record::encode(
                        &mut again,
                        h.seq,
                        h.unix_ms,
                        e.kind,
                        &e.path_and_query,
                        &e.headers,
                        e.tenant.as_ref(),
                        e.profiles,
                        e.profile_bytes,
                        &[e.body.clone()],
                    )
                    .expect("a decoded entry encodes");
                    assert_eq!(&again[..], &rec[..], "decode → encode is not the identity");
                }
                at += h.record_len();
            }
            Err(_) => match record::find_magic(data, at + 1) {
                Some(next) => at = next,
                None => break,
            },
        }
    }
});
