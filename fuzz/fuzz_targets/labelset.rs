//! The `/ingest` `name` label-set grammar (docs/ingest.md §3, §4) and the canonical rendering.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrogate::protocol::labelset::{self, NAME_LABEL};

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 reaches the parser as U+FFFD, as the query decoder produces it.
    let s = String::from_utf8_lossy(data);
    let Ok(labels) = labelset::parse(&s) else {
        return;
    };
    // `__name__` is always set (the app name, or an unvalidated override such as
    // `app{__name__=}`, exactly as Pyroscope allows).
    assert!(labels.contains_key(NAME_LABEL));
    for key in labels.keys().filter(|k| k.as_str() != NAME_LABEL) {
        assert_eq!(labelset::validate_label_name(key), Ok(()));
    }
    // Rendering never panics and, without the unescapable `,` and `}` in values and with a
    // valid app name, parses back to the same set.
    let rendered = labelset::render_canonical(&labels);
    let escapable = labels
        .iter()
        .all(|(k, v)| k == NAME_LABEL || !(v.contains(',') || v.contains('}')));
    let app_ok = labels
        .get(NAME_LABEL)
        .is_some_and(|a| labelset::validate_service_name(a).is_ok());
    if escapable && app_ok {
        assert_eq!(
            labelset::parse(&rendered).as_ref(),
            Ok(&labels),
            "{rendered}"
        );
    }
});
