//! The Push body decoder: Connect proto/JSON, gzip, gRPC-Web framing, with a small bound on
//! the decompressed size.
//!
//! Input: byte 0 = mode (bit 0 JSON codec, bit 1 gzip body, bit 2 gRPC-Web framing, bit 3
//! `grpc-encoding: gzip`), then the body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pyrogate::protocol::push::{self as push_decode, Codec, Encoding, grpc_message_encoding};

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(body);
    let codec = if mode & 1 == 0 {
        Codec::Proto
    } else {
        Codec::Json
    };
    let encoding = if mode & 2 == 0 {
        Encoding::Identity
    } else {
        Encoding::Gzip
    };
    if mode & 4 == 0 {
        if let Err(e) = push_decode::decode(body, codec, encoding, MAX) {
            let _ = (e.code(), e.to_string());
        }
        return;
    }
    // gRPC-Web: unframe, then decode the message with its own encoding flag.
    let grpc_encoding: Option<&[u8]> = if mode & 8 == 0 { None } else { Some(b"gzip") };
    let Ok((msg, compressed)) = push_decode::unframe_grpc_web(body.clone(), MAX) else {
        return;
    };
    assert_eq!(msg.len() + 5, body.len());
    if let Ok(enc) = grpc_message_encoding(compressed, grpc_encoding) {
        let _ = push_decode::decode(msg, codec, enc, MAX);
    }
});
