//! The checks of the `pprof` fuzz target, shared with the stable property test in
//! `tests/parser_props.rs`: see `pprof.rs` for the input format and what is checked.

use bytes::Bytes;
use pyrogate::config::distributor::Limits;
use pyrogate::distributor::normalize::{Normalized, normalize};
use pyrogate::distributor::validate::validate_profile;
use pyrogate::protocol::pprof;

const CAPS: pprof::Limits = pprof::Limits {
    max_size: 1 << 20,
    max_strings: 1 << 12,
    max_samples: 1 << 12,
};

/// Runs decode, re-encode, validation and (by `mode`) normalisation on `body`; panics on a
/// broken invariant.
pub fn check(mode: u8, body: &[u8]) {
    let Ok(mut p) = pprof::decode_bytes(&Bytes::copy_from_slice(body), CAPS) else {
        return;
    };
    let enc = pprof::encode(&p);
    assert_eq!(enc.len(), pprof::encoded_len(&p));
    let again = pprof::decode(Bytes::from(enc.clone()), CAPS).expect("a re-encoding decodes");
    assert_eq!(pprof::encode(&again), enc, "decode → encode is stable");

    let limits = if mode & 2 == 0 {
        Limits::default()
    } else {
        Limits {
            max_profile_stacktrace_depth: 3,
            max_profile_symbol_value_length: 8,
            max_profile_stacktrace_sample_labels: 4,
            ..Limits::default()
        }
    };
    let labels = vec![
        (b"__name__".to_vec(), b"process_cpu".to_vec()),
        (b"service_name".to_vec(), b"fuzz".to_vec()),
    ];
    let now_ms = p.time_nanos / 1_000_000;
    let size = pprof::encoded_len(&p);
    let valid = validate_profile(&limits, &mut p, &labels, size, now_ms).is_ok();
    let _ = pyrogate::distributor::series::validate(&limits, &labels, &p);
    if mode & 1 == 1 && valid {
        normalize(&mut p, 1);
        let out = pprof::encode(&p);
        let mut q = pprof::decode(Bytes::from(out), CAPS).expect("a normalised profile decodes");
        assert_eq!(
            normalize(&mut q, 1),
            Normalized::default(),
            "normalising twice"
        );
    }
}
