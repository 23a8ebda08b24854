//! The `/ingest` query decoder (`protocol::query`, Go's `url.ParseQuery`) and its encoder.
//!
//! Checks besides "never panics": encoding a parsed query and parsing it again gives the
//! same first value for every key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrogate::protocol::query;

fuzz_target!(|data: &[u8]| {
    let q = query::parse_bytes(data);
    let again = query::parse(&q.encode());
    for (k, _) in q.iter() {
        assert_eq!(again.get(k), q.get(k), "key {k:?} of {:?}", q.encode());
    }
    assert_eq!(again.len(), q.len());
});
