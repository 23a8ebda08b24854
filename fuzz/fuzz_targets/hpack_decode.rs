//! The HTTP/2 server's HPACK decoder (`http::h2::hpack`): header blocks decoded one after
//! another by one decoder (so the dynamic table carries over), each bounded by the list
//! limit; what decodes must survive our encoder and decode to the same fields.
//!
//! Input: byte 0 = table size (× 64), byte 1 = list limit (× 64), then blocks, each
//! preceded by its length byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrogate::http::h2::hpack::{Decoder, HeaderList, ListSize, encode_field};

fuzz_target!(|data: &[u8]| {
    let [table, limit, rest @ ..] = data else {
        return;
    };
    let table = usize::from(*table) * 64;
    let limit = usize::from(*limit) * 64 + 64;
    let mut d = Decoder::new(table);
    let mut out = HeaderList::default();
    let mut rest = rest;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (block, tail) = tail.split_at(n);
        rest = tail;
        out.clear();
        let Ok(size) = d.decode(block, limit, &mut out) else {
            // A connection error: the server stops decoding.
            return;
        };
        let stored: usize = out.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        // Nothing past the limit is kept (the field that crosses it may be).
        assert!(stored <= limit + 2 * (table + 32) + block.len() * 8, "{stored} > {limit}");
        if size == ListSize::Within {
            assert!(stored <= limit, "{stored} within {limit}?");
        }
        let mut again = Vec::new();
        for (name, value) in out.iter() {
            encode_field(&mut again, name, value);
        }
        let mut round = HeaderList::default();
        Decoder::new(0)
            .decode(&again, usize::MAX, &mut round)
            .expect("our own encoding decodes");
        assert!(out.iter().eq(round.iter()), "round trip changed the fields");
    }
});
