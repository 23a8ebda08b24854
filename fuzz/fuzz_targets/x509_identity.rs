//! The X.509 identity reader (`util::x509::identity`): what an mTLS client certificate's DER
//! can make it do.
//!
//! Checks besides "never panics": what it returns stays within the reader's bounds (subject
//! attributes, SAN entries, string lengths, a subject string at most four bytes per input
//! byte); SAN text is ASCII and iPAddress entries parse back as addresses; and a certificate
//! that reads fails without its last byte (its outer length no longer fits).
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use pyrogate::util::x509::{self, MAX_SAN_ENTRIES, MAX_STRING_LEN, MAX_SUBJECT_ATTRIBUTES};

fuzz_target!(|data: &[u8]| {
    let Ok(id) = x509::identity(data) else {
        return;
    };
    let attributes = id.organization.len() + id.organizational_unit.len();
    assert!(attributes <= MAX_SUBJECT_ATTRIBUTES);
    assert!(id.subject.len() <= 4 * data.len());
    if id.common_name.is_some() {
        assert!(id.subject.contains("CN="));
    }
    let sans = id.dns_names.len() + id.emails.len() + id.uris.len() + id.ips.len();
    assert!(sans <= MAX_SAN_ENTRIES);
    for text in id.dns_names.iter().chain(&id.emails).chain(&id.uris) {
        assert!(text.len() <= MAX_STRING_LEN && text.is_ascii());
    }
    for ip in &id.ips {
        assert!(ip.parse::<IpAddr>().is_ok(), "{ip:?}");
    }
    assert!(x509::identity(&data[..data.len() - 1]).is_err());
});
