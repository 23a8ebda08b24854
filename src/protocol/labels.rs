//! Alloy's label rules (`docs/ingest.md` §5 and `docs/alloy-compat.md` §7) as pure functions over [`Labels`].
//!
//! Alloy rewrites labels in two components: `pyroscope.receive_http` adds `service_name`
//! (`docs/ingest.md` §5.2) and `pyroscope.write` makes `__name__` follow `service_name`, validates, drops empty
//! values, applies `external_labels` and renders the forwarded `name` (`docs/ingest.md` §5.3–§5.5). Users compare
//! what reaches Pyroscope through pyrogate with what reached it through Alloy, so `/ingest`
//! follows those steps exactly, including their quirks.
//!
//! Push is where pyrogate deliberately differs (`docs/alloy-compat.md` §16): it forwards the request as received
//! whenever the label rule would not change a series ([`push_needs_rewrite`]), and it never runs
//! `ensureServiceName` on Push, so the `app_name=<profile type>` quirk of `docs/ingest.md` §5.2 does not leak
//! into users' data.
//!
//! Alloy's label edits go through a Prometheus `labels.Builder`, whose semantics show up here:
//! setting an empty value deletes the label, and building from a base drops the base's
//! empty-valued labels.

use std::collections::BTreeMap;

use super::labelset::{self, LabelSetError, Labels, NAME_LABEL};
use super::query::go_lossy;

/// The label Pyroscope groups applications by.
pub const SERVICE_NAME_LABEL: &str = "service_name";
/// Where `ensureServiceName` keeps the original app name when `service_name` already exists.
pub const APP_NAME_LABEL: &str = "app_name";
/// Marks delta profiles; the one `__`-prefixed label besides `__name__` that Push keeps.
pub const DELTA_LABEL: &str = "__delta__";
/// Prefix of reserved (internal) label names.
const RESERVED_PREFIX: &str = "__";

/// Why `validateLabels` rejected a label set (`docs/ingest.md` §5.4). The `Display` texts are
/// Alloy's reasons verbatim; callers prefix them with `invalid labels in profile: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelsError {
    /// The label set is empty (typically: `name` was missing or did not parse).
    #[error("service name is required")]
    ServiceNameRequired,
    /// Two labels share a name; an empty name also lands here (it equals the initial "previous
    /// name" of Alloy's loop).
    #[error("duplicate label name: {0}")]
    DuplicateLabelName(String),
    /// A value is not UTF-8. Name and value are shown with U+FFFD for the invalid bytes.
    #[error("invalid label value for {name}: {value}")]
    InvalidLabelValue {
        /// The label name.
        name: String,
        /// The value, lossily decoded.
        value: String,
    },
    /// A name (other than `__name__`) is outside `[A-Za-z0-9_.]`, e.g.
    /// `invalid label name: invalid label name: invalid-label: character is not allowed: '-'`.
    #[error("invalid label name: {0}")]
    InvalidLabelName(LabelSetError),
}

// === builder semantics ===

/// Prometheus `Builder.Set`: an empty value deletes the label.
fn builder_set(labels: &mut Labels, key: &str, value: &str) {
    if value.is_empty() {
        labels.remove(key);
    } else if let Some(existing) = labels.get_mut(key) {
        existing.clear();
        existing.push_str(value);
    } else {
        labels.insert(key.to_owned(), value.to_owned());
    }
}

/// Drops every empty-valued label (Alloy's `LabelSet.Add` in the `name` rebuild, and what a
/// Prometheus builder does to its base).
pub fn drop_empty(labels: &mut Labels) {
    labels.retain(|_, v| !v.is_empty());
}

// === receive_http / write steps ===

/// `ensureServiceName` (`docs/ingest.md` §5.2): without `service_name`, set it to the `__name__` value; with
/// one, copy the `__name__` value into `app_name` (overwriting it).
///
/// Builder semantics: an empty `__name__` value deletes the target label instead of setting
/// it, and, because Alloy builds from the incoming labels, every other empty-valued label is
/// dropped too. The `service_name` presence test looks at the labels *before* that, so
/// `app{service_name=}` yields `{__name__=app, app_name=app}`.
pub fn ensure_service_name(labels: &mut Labels) {
    let app = labels.get(NAME_LABEL).cloned().unwrap_or_default();
    let target = if labels.contains_key(SERVICE_NAME_LABEL) {
        APP_NAME_LABEL
    } else {
        SERVICE_NAME_LABEL
    };
    drop_empty(labels);
    builder_set(labels, target, &app);
}

/// `ensureNameMatchesService` (`docs/ingest.md` §5.3, `/ingest` only): a non-empty `service_name` becomes the
/// `__name__` value, so relabelled service names become the prefix of the rebuilt `name`.
pub fn ensure_name_matches_service(labels: &mut Labels) {
    let Some(service) = labels.get(SERVICE_NAME_LABEL).filter(|s| !s.is_empty()) else {
        return;
    };
    let service = service.clone();
    drop_empty(labels);
    builder_set(labels, NAME_LABEL, &service);
}

/// `validateLabels` (`docs/ingest.md` §5.4) over a map. A map cannot hold duplicates or non-UTF-8 values, so
/// only the empty set, an empty name and invalid names can fail here; use [`validate_pairs`]
/// for labels as they arrive in a Push series.
pub fn validate(labels: &Labels) -> Result<(), LabelsError> {
    validate_sorted(labels.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
}

/// `validateLabels` (`docs/ingest.md` §5.4) over unsorted byte pairs: sorts them by name (stable, byte-wise, as
/// Prometheus sorts labels) and reports the first error of: empty set, adjacent duplicate name,
/// non-UTF-8 value, invalid name (`__name__` is exempt).
pub fn validate_pairs(pairs: &[(impl AsRef<[u8]>, impl AsRef<[u8]>)]) -> Result<(), LabelsError> {
    let mut sorted: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    validate_sorted(sorted.into_iter())
}

/// The loop of Alloy's `validateLabels` over name-sorted labels; checks run in Alloy's order.
fn validate_sorted<'a>(
    labels: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<(), LabelsError> {
    let mut previous: Option<&[u8]> = None;
    for (name, value) in labels {
        // Alloy starts with `previous = ""`, which makes an empty first name a duplicate.
        if name == previous.unwrap_or_default() {
            return Err(LabelsError::DuplicateLabelName(go_lossy(name)));
        }
        if std::str::from_utf8(value).is_err() {
            return Err(LabelsError::InvalidLabelValue {
                name: go_lossy(name),
                value: go_lossy(value),
            });
        }
        if name != NAME_LABEL.as_bytes() {
            validate_name_bytes(name).map_err(LabelsError::InvalidLabelName)?;
        }
        previous = Some(name);
    }
    match previous {
        Some(_) => Ok(()),
        None => Err(LabelsError::ServiceNameRequired),
    }
}

/// `labelset.ValidateLabelName` on bytes; invalid UTF-8 shows up as U+FFFD, the rune Go reports.
fn validate_name_bytes(name: &[u8]) -> Result<(), LabelSetError> {
    match std::str::from_utf8(name) {
        Ok(s) => labelset::validate_label_name(s),
        Err(_) => labelset::validate_label_name(&go_lossy(name)),
    }
}

/// Applies `external_labels`: each one overrides a same-named label; an empty value deletes.
pub fn apply_external(labels: &mut Labels, external: &Labels) {
    for (key, value) in external {
        builder_set(labels, key, value);
    }
}

// === /ingest ===

/// `pyroscope.write`'s `AppendIngest` label steps (`docs/alloy-compat.md` §4, `docs/ingest.md` §5.5) on labels that already
/// went through `receive_http`: `ensureNameMatchesService` → `validateLabels` → drop empty →
/// `external_labels` → canonical `name`.
///
/// The prefix is `__name__` as it stands *after* `external_labels`: an external `service_name`
/// therefore changes the braces but not the prefix, exactly as in Alloy (`docs/ingest.md` §5.5).
pub fn append_ingest_name(mut labels: Labels, external: &Labels) -> Result<String, LabelsError> {
    ensure_name_matches_service(&mut labels);
    validate(&labels)?;
    drop_empty(&mut labels);
    apply_external(&mut labels, external);
    Ok(labelset::render_canonical(&labels))
}

/// The whole `/ingest` label pipeline from parsed `name` labels to the forwarded `name`:
/// `ensureServiceName` (receive side, `docs/alloy-compat.md` §4) then [`append_ingest_name`].
///
/// The caller passes an empty map when `name` was missing, empty or failed to parse (Alloy
/// logs a warning and continues); the result is then [`LabelsError::ServiceNameRequired`].
pub fn ingest_forward_name(parsed: &Labels, external: &Labels) -> Result<String, LabelsError> {
    let mut labels = parsed.clone();
    ensure_service_name(&mut labels);
    append_ingest_name(labels, external)
}

// === Push ===

/// Reserved labels the Push path drops: `__`-prefixed, except `__name__` and `__delta__`.
fn is_dropped_on_push(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX) && name != NAME_LABEL && name != DELTA_LABEL
}

/// pyrogate's Push label rule: drop reserved labels (except `__name__`, `__delta__`), later
/// duplicates overwrite earlier ones, empty values delete, `external_labels` override (empty
/// deletes), result sorted by name. Unlike Alloy, no `service_name`/`app_name` is added.
pub fn push_rewrite<S: AsRef<str>>(pairs: &[(S, S)], external: &Labels) -> Vec<(String, String)> {
    let mut merged: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        if is_dropped_on_push(name) {
            continue;
        }
        if value.is_empty() {
            merged.remove(name);
        } else {
            merged.insert(name, value);
        }
    }
    for (name, value) in external {
        if value.is_empty() {
            merged.remove(name.as_str());
        } else {
            merged.insert(name, value);
        }
    }
    merged
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Whether [`push_rewrite`] would change the series' label multiset. When it would not, the
/// original request bytes can be forwarded untouched (order alone does not matter: Pyroscope
/// sorts labels itself).
///
/// True iff a reserved label would be dropped, a value is empty, a name repeats, or an external
/// label is missing, different, or (for an empty external value) present.
pub fn push_needs_rewrite<S: AsRef<str>>(pairs: &[(S, S)], external: &Labels) -> bool {
    // A reserved label is dropped, unless an external label puts the very same pair back.
    let rewrites_a_pair = pairs.iter().any(|(name, value)| {
        let (name, value) = (name.as_ref(), value.as_ref());
        value.is_empty()
            || (is_dropped_on_push(name) && external.get(name).map(String::as_str) != Some(value))
    });
    rewrites_a_pair || has_duplicate_name(pairs) || !external_already_applied(pairs, external)
}

/// Up to this many pairs a quadratic scan beats sorting a copy (and allocates nothing); SDK
/// series carry about ten labels.
const SMALL_SERIES: usize = 32;

fn has_duplicate_name<S: AsRef<str>>(pairs: &[(S, S)]) -> bool {
    if pairs.len() <= SMALL_SERIES {
        return pairs.iter().enumerate().any(|(i, (name, _))| {
            pairs[i + 1..]
                .iter()
                .any(|(other, _)| other.as_ref() == name.as_ref())
        });
    }
    let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
    names.sort_unstable();
    names.windows(2).any(|w| w[0] == w[1])
}

/// Every external label is present with its value, and every empty external value is absent.
/// Assumes names are unique (checked separately).
fn external_already_applied<S: AsRef<str>>(pairs: &[(S, S)], external: &Labels) -> bool {
    external.iter().all(|(name, value)| {
        let current = pairs
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref());
        match current {
            Some(v) => v == value,
            None => value.is_empty(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::query;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Labels as receive_http derives them from a `name` value (`docs/alloy-compat.md` §4).
    fn received(name: &str) -> Labels {
        let mut l = labelset::parse(name).unwrap_or_default();
        ensure_service_name(&mut l);
        l
    }

    /// Alloy's forwarded query for an incoming raw query (`docs/alloy-compat.md` §4, §12.1; `docs/ingest.md` §5.5).
    fn forward_query(raw: &str, external: &Labels) -> Result<String, LabelsError> {
        let mut q = query::parse(raw);
        let parsed = q
            .get("name")
            .and_then(|n| labelset::parse(n).ok())
            .unwrap_or_default();
        let name = ingest_forward_name(&parsed, external)?;
        q.set("name", &name);
        Ok(q.encode())
    }

    fn reason(result: Result<(), LabelsError>) -> String {
        match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    // --- ensureServiceName (docs/ingest.md §5.2) ---

    #[test]
    fn service_name_from_app_name() {
        assert_eq!(
            received("test_app"),
            labels(&[("__name__", "test_app"), ("service_name", "test_app")])
        );
    }

    #[test]
    fn service_name_added_next_to_tags() {
        assert_eq!(
            received("test.app{env=prod,region=us-east}"),
            labels(&[
                ("__name__", "test.app"),
                ("env", "prod"),
                ("region", "us-east"),
                ("service_name", "test.app"),
            ])
        );
    }

    #[test]
    fn existing_service_name_moves_app_name_to_app_name() {
        assert_eq!(
            received("test.app{service_name=my-service}"),
            labels(&[
                ("__name__", "test.app"),
                ("app_name", "test.app"),
                ("service_name", "my-service"),
            ])
        );
        // An existing app_name is overwritten.
        assert_eq!(
            received("test.app{service_name=s,app_name=old}")["app_name"],
            "test.app"
        );
    }

    #[test]
    fn push_series_with_name_and_service_gets_app_name_quirk() {
        let mut l = labels(&[("__name__", "process_cpu"), ("service_name", "svc")]);
        ensure_service_name(&mut l);
        assert_eq!(
            l,
            labels(&[
                ("__name__", "process_cpu"),
                ("app_name", "process_cpu"),
                ("service_name", "svc"),
            ])
        );
    }

    #[test]
    fn series_without_name_or_service_is_unchanged() {
        let mut l = labels(&[("app", "x")]);
        ensure_service_name(&mut l);
        assert_eq!(l, labels(&[("app", "x")]));
    }

    #[test]
    fn without_name_existing_app_name_is_removed() {
        let mut l = labels(&[("app_name", "a"), ("service_name", "s")]);
        ensure_service_name(&mut l);
        assert_eq!(l, labels(&[("service_name", "s")]));
    }

    #[test]
    fn builder_drops_empty_values() {
        assert_eq!(
            received("app{a=,b=1}"),
            labels(&[("__name__", "app"), ("b", "1"), ("service_name", "app")])
        );
        // service_name present (though empty) → app_name set, then the empty value goes.
        assert_eq!(
            received("app{service_name=}"),
            labels(&[("__name__", "app"), ("app_name", "app")])
        );
        // An empty __name__ is dropped and adds nothing.
        assert_eq!(received("app{__name__=}"), Labels::new());
    }

    // --- ensureNameMatchesService (docs/ingest.md §5.3) ---

    #[test]
    fn name_follows_service_name() {
        let mut l = labels(&[
            ("__name__", "original-name"),
            ("service_name", "my-service-grafana"),
        ]);
        ensure_name_matches_service(&mut l);
        assert_eq!(l["__name__"], "my-service-grafana");
        assert_eq!(
            append_ingest_name(
                labels(&[
                    ("__name__", "original-name"),
                    ("service_name", "my-service-grafana")
                ]),
                &Labels::new()
            ),
            Ok("my-service-grafana{service_name=my-service-grafana}".to_owned())
        );
    }

    #[test]
    fn empty_or_missing_service_name_changes_nothing() {
        let mut l = labels(&[("__name__", "a"), ("service_name", ""), ("x", "")]);
        let before = l.clone();
        ensure_name_matches_service(&mut l);
        assert_eq!(l, before);
    }

    // --- validateLabels (docs/ingest.md §5.4) ---

    #[test]
    fn validate_reasons() {
        assert_eq!(reason(validate(&Labels::new())), "service name is required");
        assert_eq!(
            reason(validate(&labels(&[("", "x"), ("a", "1")]))),
            "duplicate label name: "
        );
        assert_eq!(
            reason(validate(&labels(&[
                ("__name__", "a"),
                ("invalid-label", "x")
            ]))),
            "invalid label name: invalid label name: invalid-label: character is not allowed: '-'"
        );
        assert_eq!(
            reason(validate(&labels(&[
                ("__name__", "not valid!"),
                ("__delta__", "false"),
                ("otel.scope.name", "x"),
                ("__meta_x", ""),
            ]))),
            "ok"
        );
    }

    #[test]
    fn validate_pairs_reasons() {
        let none: [(&str, &str); 0] = [];
        assert_eq!(reason(validate_pairs(&none)), "service name is required");
        assert_eq!(
            reason(validate_pairs(&[("b", "1"), ("a", "1"), ("b", "2")])),
            "duplicate label name: b"
        );
        assert_eq!(
            reason(validate_pairs(&[("__name__", "a"), ("__name__", "b")])),
            "duplicate label name: __name__"
        );
        assert_eq!(
            reason(validate_pairs(&[(&b"a"[..], &b"\xff"[..])])),
            "invalid label value for a: \u{FFFD}"
        );
        assert_eq!(
            reason(validate_pairs(&[
                ("__name__", "x"),
                ("invalid-label-name", "v")
            ])),
            "invalid label name: invalid label name: invalid-label-name: character is not allowed: '-'"
        );
        assert_eq!(
            reason(validate_pairs(&[(&b"a\xffb"[..], &b"v"[..])])),
            "invalid label name: invalid label name: a\u{FFFD}b: character is not allowed: '\u{FFFD}'"
        );
        assert_eq!(
            reason(validate_pairs(&[("", "v")])),
            "duplicate label name: "
        );
        assert_eq!(
            reason(validate_pairs(&[
                ("service_name", "s"),
                ("__name__", "process_cpu")
            ])),
            "ok"
        );
    }

    #[test]
    fn validate_checks_in_order_per_label() {
        // Sorted: a (bad value) comes before b- (bad name), so the value error wins.
        assert_eq!(
            reason(validate_pairs(&[
                (&b"b-"[..], &b"1"[..]),
                (&b"a"[..], &b"\xff"[..])
            ])),
            "invalid label value for a: \u{FFFD}"
        );
        // For one label, the duplicate check precedes the value check.
        assert_eq!(
            reason(validate_pairs(&[
                (&b"a"[..], &b"1"[..]),
                (&b"a"[..], &b"\xff"[..])
            ])),
            "duplicate label name: a"
        );
    }

    // --- external labels / drop empty ---

    #[test]
    fn external_labels_override_and_empty_deletes() {
        let mut l = labels(&[("a", "1"), ("b", "2")]);
        apply_external(&mut l, &labels(&[("a", "x"), ("b", ""), ("c", "3")]));
        assert_eq!(l, labels(&[("a", "x"), ("c", "3")]));
    }

    #[test]
    fn drop_empty_removes_only_empty_values() {
        let mut l = labels(&[("a", ""), ("b", "2")]);
        drop_empty(&mut l);
        assert_eq!(l, labels(&[("b", "2")]));
    }

    // --- /ingest name (docs/ingest.md §5.5, docs/alloy-compat.md §15) ---

    #[test]
    fn ingest_checklist_names() {
        let none = Labels::new();
        let name = |n: &str| ingest_forward_name(&labelset::parse(n).unwrap_or_default(), &none);
        assert_eq!(
            name("test_app"),
            Ok("test_app{service_name=test_app}".to_owned())
        );
        assert_eq!(
            name("test.app{invalid-label-syntax}"),
            Ok("test.app{service_name=test.app}".to_owned())
        );
        assert_eq!(
            name("test.app{service_name=my-service}"),
            Ok("my-service{app_name=test.app,service_name=my-service}".to_owned())
        );
        assert_eq!(
            name("app{a=,__x=1}"),
            Ok("app{__x=1,service_name=app}".to_owned()),
            "reserved labels are kept on /ingest; empty values dropped"
        );
        assert_eq!(
            ingest_forward_name(&Labels::new(), &none),
            Err(LabelsError::ServiceNameRequired)
        );
    }

    #[test]
    fn append_ingest_with_external_labels() {
        // write_test "AppendIngest basic": external env=prod, cluster=cluster-1.
        let external = labels(&[("env", "prod"), ("cluster", "cluster-1")]);
        let name = append_ingest_name(
            labels(&[
                ("__name__", "my.awesome.app.cpu"),
                ("env", "staging"),
                ("region", "us-west-1"),
            ]),
            &external,
        );
        assert_eq!(
            name,
            Ok("my.awesome.app.cpu{cluster=cluster-1,env=prod,region=us-west-1}".to_owned())
        );
    }

    #[test]
    fn external_service_name_changes_braces_not_prefix() {
        let external = labels(&[("service_name", "relabelled")]);
        assert_eq!(
            ingest_forward_name(&received_raw("app{env=x}"), &external),
            Ok("app{env=x,service_name=relabelled}".to_owned())
        );
    }

    #[test]
    fn external_name_label_changes_prefix() {
        let external = labels(&[("__name__", "other")]);
        assert_eq!(
            ingest_forward_name(&received_raw("app"), &external),
            Ok("other{service_name=app}".to_owned())
        );
    }

    fn received_raw(name: &str) -> Labels {
        labelset::parse(name).unwrap_or_default()
    }

    // --- worked examples (docs/ingest.md §5.7) ---

    #[test]
    fn worked_example_node_ingest() {
        let raw = "format=pprof&from=1795312298&name=feas.node.app%7Botel.scope.name%3Dcom.grafana.pyroscope%2Fnodejs%2Cotel.scope.version%3D0.6.4%2Cprocess.runtime.name%3Dnodejs%2Cprocess.runtime.version%3D20.20.2%2Cenv%3Dfeas%2Cregion%3Dlocal%7D&spyName=nodespy&until=1795312309&sampleRate=17";
        assert_eq!(
            forward_query(raw, &Labels::new()),
            Ok("format=pprof&from=1795312298&name=feas.node.app%7Benv%3Dfeas%2Cotel.scope.name%3Dcom.grafana.pyroscope%2Fnodejs%2Cotel.scope.version%3D0.6.4%2Cprocess.runtime.name%3Dnodejs%2Cprocess.runtime.version%3D20.20.2%2Cregion%3Dlocal%2Cservice_name%3Dfeas.node.app%7D&sampleRate=17&spyName=nodespy&until=1795312309".to_owned())
        );
    }

    #[test]
    fn worked_example_pyroscope_rs_058_with_external_labels() {
        let raw = "name=feas.rust05.app&from=1795312650&until=1795312660&format=pprof&sampleRate=100&spyName=pyroscope-rs";
        let external = labels(&[("env", "prod"), ("cluster", "c1")]);
        let parsed = labelset::parse("feas.rust05.app").unwrap_or_default();
        assert_eq!(
            ingest_forward_name(&parsed, &external),
            Ok("feas.rust05.app{cluster=c1,env=prod,service_name=feas.rust05.app}".to_owned())
        );
        assert_eq!(
            forward_query(raw, &external),
            Ok("format=pprof&from=1795312650&name=feas.rust05.app%7Bcluster%3Dc1%2Cenv%3Dprod%2Cservice_name%3Dfeas.rust05.app%7D&sampleRate=100&spyName=pyroscope-rs&until=1795312660".to_owned())
        );
    }

    #[test]
    fn unparseable_name_fails_validation() {
        assert_eq!(
            forward_query("name=app%7Ba-b%3D1%7D", &Labels::new()),
            Err(LabelsError::ServiceNameRequired)
        );
        assert_eq!(
            forward_query("from=1", &Labels::new()),
            Err(LabelsError::ServiceNameRequired)
        );
    }

    // --- Push ---

    #[test]
    fn push_write_test_labels() {
        // write_test: external foo=buzz; input __name__=test, __type__=type, job=foo, foo=bar.
        let pairs = [
            ("__name__", "test"),
            ("__type__", "type"),
            ("job", "foo"),
            ("foo", "bar"),
        ];
        let external = labels(&[("foo", "buzz")]);
        assert_eq!(
            push_rewrite(&pairs, &external),
            owned(&[("__name__", "test"), ("foo", "buzz"), ("job", "foo")])
        );
        assert!(push_needs_rewrite(&pairs, &external));
    }

    #[test]
    fn push_series_without_service_name_is_left_alone() {
        let pairs = [("app", "app-0")];
        assert_eq!(
            push_rewrite(&pairs, &Labels::new()),
            owned(&[("app", "app-0")])
        );
        assert!(!push_needs_rewrite(&pairs, &Labels::new()));
    }

    #[test]
    fn push_python_series_is_forwarded_as_is() {
        // pyroscope-io 1.4.0 order (not sorted); pyrogate adds no app_name.
        let pairs = [
            ("__name__", "process_cpu"),
            ("env", "feas"),
            ("region", "local"),
            ("service_name", "feas.python.app"),
            ("otel.scope.name", "com.grafana.pyroscope/python"),
            ("otel.scope.version", "1.4.0"),
            ("process.runtime.name", "cpython"),
            ("process.runtime.version", "3.11.7"),
        ];
        assert!(!push_needs_rewrite(&pairs, &Labels::new()));
        let rewritten = push_rewrite(&pairs, &Labels::new());
        assert_eq!(rewritten.len(), pairs.len());
        assert!(rewritten.iter().all(|(k, _)| k != "app_name"));
        assert!(rewritten.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn push_rewrite_rules() {
        let none = Labels::new();
        // Later duplicates overwrite; empty values delete (also an earlier value).
        assert_eq!(
            push_rewrite(&[("a", "1"), ("b", "x"), ("a", "2"), ("b", "")], &none),
            owned(&[("a", "2")])
        );
        assert_eq!(
            push_rewrite(&[("a", ""), ("a", "1")], &none),
            owned(&[("a", "1")])
        );
        // Reserved labels: only __name__ and __delta__ survive; externals are not filtered.
        assert_eq!(
            push_rewrite(
                &[
                    ("__name__", "n"),
                    ("__delta__", "false"),
                    ("__session_id__", "x"),
                    ("__", "y")
                ],
                &labels(&[("__ext", "e")])
            ),
            owned(&[("__delta__", "false"), ("__ext", "e"), ("__name__", "n")])
        );
        // An empty external value deletes.
        assert_eq!(
            push_rewrite(&[("a", "1"), ("b", "2")], &labels(&[("a", "")])),
            owned(&[("b", "2")])
        );
    }

    #[test]
    fn push_needs_rewrite_cases() {
        let none = Labels::new();
        assert!(
            !push_needs_rewrite(&[("b", "1"), ("a", "2")], &none),
            "order alone"
        );
        assert!(
            push_needs_rewrite(&[("a", "1"), ("a", "1")], &none),
            "duplicate"
        );
        assert!(push_needs_rewrite(&[("a", "")], &none), "empty value");
        assert!(push_needs_rewrite(&[("__type__", "t")], &none), "reserved");
        assert!(!push_needs_rewrite(
            &[("__name__", "n"), ("__delta__", "true")],
            &none
        ));
        let ext = labels(&[("env", "prod")]);
        assert!(!push_needs_rewrite(&[("a", "1"), ("env", "prod")], &ext));
        assert!(push_needs_rewrite(&[("a", "1"), ("env", "dev")], &ext));
        assert!(push_needs_rewrite(&[("a", "1")], &ext));
        let delete = labels(&[("env", "")]);
        assert!(!push_needs_rewrite(&[("a", "1")], &delete));
        assert!(push_needs_rewrite(&[("a", "1"), ("env", "x")], &delete));
        let none_pairs: [(&str, &str); 0] = [];
        assert!(!push_needs_rewrite(&none_pairs, &none));
    }

    #[test]
    fn push_needs_rewrite_many_labels() {
        let names: Vec<String> = (0..40).map(|i| format!("l{i}")).collect();
        let mut pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        assert!(!push_needs_rewrite(&pairs, &Labels::new()));
        pairs.push(("l7", "w"));
        assert!(push_needs_rewrite(&pairs, &Labels::new()));
    }

    // --- properties ---

    fn pair() -> impl Strategy<Value = (String, String)> {
        (
            prop_oneof![
                "[a-c]{1,2}",
                Just("__name__".to_owned()),
                Just("__delta__".to_owned()),
                "__[a-c]{0,2}",
            ],
            "[xy]{0,2}",
        )
    }

    fn sorted_pairs(pairs: &[(String, String)]) -> Vec<(String, String)> {
        let mut v = pairs.to_vec();
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// `push_needs_rewrite` is false exactly when the rewrite is a pure reordering.
        #[test]
        fn needs_rewrite_iff_multiset_changes(
            pairs in proptest::collection::vec(pair(), 0..12),
            external in proptest::collection::btree_map("[a-c]{1,2}|__[ab]", "[xy]{0,2}", 0..3),
        ) {
            let rewritten = push_rewrite(&pairs, &external);
            let changed = sorted_pairs(&pairs) != rewritten;
            prop_assert_eq!(push_needs_rewrite(&pairs, &external), changed);
        }

        /// The rewrite's output is sorted, unique, non-empty-valued and idempotent.
        #[test]
        fn push_rewrite_is_normal_form(
            pairs in proptest::collection::vec(pair(), 0..12),
            external in proptest::collection::btree_map("[a-c]{1,2}", "[xy]{0,2}", 0..3),
        ) {
            let once = push_rewrite(&pairs, &external);
            prop_assert!(once.windows(2).all(|w| w[0].0 < w[1].0));
            prop_assert!(once.iter().all(|(_, v)| !v.is_empty()));
            prop_assert_eq!(push_rewrite(&once, &external), once.clone());
            prop_assert!(!push_needs_rewrite(&once, &external));
        }

        /// Map validation and pair validation agree on maps.
        #[test]
        fn validate_agrees_with_validate_pairs(
            l in proptest::collection::btree_map("[a-c_.-]{0,3}", "[xy]{0,2}", 0..5),
        ) {
            let pairs: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(validate(&l), validate_pairs(&pairs));
        }

        /// Whatever `name` a client sends, the forwarded name either fails validation or parses
        /// back (when values avoid `,`/`}`) to the labels that were rendered.
        #[test]
        fn forwarded_name_parses_back(name in "[a-z]{1,5}(\\{([a-c_]{1,3}=[a-z ]{0,3},){0,4}\\})?") {
            let parsed = labelset::parse(&name).unwrap_or_default();
            if let Ok(forwarded) = ingest_forward_name(&parsed, &Labels::new()) {
                let mut expected = parsed.clone();
                ensure_service_name(&mut expected);
                ensure_name_matches_service(&mut expected);
                drop_empty(&mut expected);
                prop_assert_eq!(labelset::parse(&forwarded), Ok(expected));
            }
        }
    }
}
