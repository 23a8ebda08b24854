//! The pprof decoder and the distributor stages that run on what it decodes: validation,
//! normalisation and re-encoding, as the gateway runs them on every profile it checks.
//!
//! Input: byte 0 = mode (bit 0 normalise, bit 1 tight validation limits: depth 3, symbols
//! 8 bytes, 4 sample labels), then the profile (plain or gzip'd).
//!
//! Checks besides "never panics": `encoded_len` is exact; decode → encode → decode gives
//! the same encoding; a normalised profile re-encodes to bytes that decode, and normalising
//! it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod pprof_check;

fuzz_target!(|data: &[u8]| {
    if let Some((&mode, body)) = data.split_first() {
        pprof_check::check(mode, body);
    }
});
