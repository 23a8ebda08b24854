//! The label set of a series, as Pyroscope checks it (`ValidateLabels`; docs/distributor.md
//! §4.1) and prints it in its messages (`LabelPairsString`).
//!
//! Labels are bytes: the ones merged in from pprof sample labels come from the profile's
//! string table and need not be UTF-8, and Pyroscope reports exactly that.

use crate::config::distributor::Limits;
use crate::protocol::labelstring;

use super::reason::{Invalid, Reason};

/// One label.
pub type Pair = (Vec<u8>, Vec<u8>);

/// The value Pyroscope gives `service_name` when a series has none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// `LabelPairsString`: `{name="value", …}`, names raw, values Go-quoted, in slice order.
pub fn pairs_string(ls: &[Pair]) -> String {
    labelstring::render(ls)
}

/// The value of the first label called `name`, empty when there is none (Go's `Get`).
pub fn get<'a>(ls: &'a [Pair], name: &str) -> &'a [u8] {
    ls.iter()
        .find(|(n, _)| n == name.as_bytes())
        .map_or(&[][..], |(_, v)| v)
}

/// Sorts by name only, bytewise, as `sort.Sort(phlaremodel.Labels(ls))` does.
pub fn sort(ls: &mut [Pair]) {
    ls.sort_by(|a, b| a.0.cmp(&b.0));
}

/// `pushSeries`' first step: a series without `service_name` (or with an empty one) gets
/// `service_name="unknown_service"`; then the labels are sorted.
pub fn ensure_service_name(ls: &mut Vec<Pair>) {
    if get(ls, "service_name").is_empty() {
        ls.push((
            b"service_name".to_vec(),
            UNKNOWN_SERVICE.as_bytes().to_vec(),
        ));
    }
    sort(ls);
}

/// Drops every label whose name has an empty value somewhere in the set, as Pyroscope's
/// `LabelsBuilder.Reset` does (an empty value means "absent").
pub fn drop_empty(ls: &mut Vec<Pair>) {
    if !ls.iter().any(|(_, v)| v.is_empty()) {
        return;
    }
    let empty: Vec<Vec<u8>> = ls
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(n, _)| n.clone())
        .collect();
    ls.retain(|(n, _)| !empty.contains(n));
}

/// The sum of the lengths of every name and value (Pyroscope's `labelsSize`, part of the
/// bytes a profile costs against the rate limit).
pub fn size(ls: &[Pair]) -> usize {
    ls.iter().map(|(n, v)| n.len() + v.len()).sum()
}

/// Pyroscope's default ingestion relabeling rules, which run before the labels are
/// validated: `__name__="godeltaprof_X"` becomes `X` with `__delta__="false"`, and
/// `__name__="wall"` with `__type__="cpu"` becomes `process_cpu`.
pub fn default_relabel(ls: &mut Vec<Pair>) {
    let name = get(ls, "__name__");
    if let Some(rest) = name.strip_prefix(b"godeltaprof_".as_slice()) {
        let rest = rest.to_vec();
        set(ls, "__name__", rest);
        set(ls, "__delta__", b"false".to_vec());
    } else if name == b"wall" && get(ls, "__type__") == b"cpu" {
        set(ls, "__name__", b"process_cpu".to_vec());
    }
}

fn set(ls: &mut Vec<Pair>, name: &str, value: Vec<u8>) {
    match ls.iter_mut().find(|(n, _)| n == name.as_bytes()) {
        Some(p) => p.1 = value,
        None => ls.push((name.as_bytes().to_vec(), value)),
    }
}

/// `ValidateLabels`: the first failing check, in Pyroscope's order, with its message. The
/// labels are sorted first; with sanitisation on (`disable_label_sanitization = false`)
/// names with dots are rewritten in place.
pub fn validate(limits: &Limits, ls: &mut Vec<Pair>) -> Result<(), Invalid> {
    if ls.is_empty() {
        return Err(Invalid::new(
            Reason::MissingLabels,
            "error at least one label pair is required per profile",
        ));
    }
    sort(ls);
    if ls.len() > limits.max_label_names_per_series {
        return Err(Invalid::new(
            Reason::MaxLabelNamesPerSeries,
            format!(
                "profile series '{}' has {} label names; limit {}",
                pairs_string(ls),
                ls.len(),
                limits.max_label_names_per_series
            ),
        ));
    }
    let metric = get(ls, "__name__");
    if metric.is_empty() || std::str::from_utf8(metric).is_err() {
        return Err(invalid_labels(ls, "invalid metric name"));
    }
    if get(ls, "service_name").is_empty() {
        return Err(Invalid::new(
            Reason::MissingLabels,
            format!(
                "invalid labels '{}' with error: service name is not provided",
                pairs_string(ls)
            ),
        ));
    }
    let mut idx = 0;
    let mut last: Option<Vec<u8>> = None;
    while idx < ls.len() {
        let (name, value) = &ls[idx];
        if name.len() > limits.max_label_name_length {
            return Err(Invalid::new(
                Reason::LabelNameTooLong,
                format!(
                    "profile with labels '{}' has label name too long: '{}'",
                    pairs_string(ls),
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        if value.len() > limits.max_label_value_length {
            return Err(Invalid::new(
                Reason::LabelValueTooLong,
                format!(
                    "profile with labels '{}' has label value too long: '{}'",
                    pairs_string(ls),
                    String::from_utf8_lossy(value)
                ),
            ));
        }
        if limits.disable_label_sanitization {
            if name.is_empty() || std::str::from_utf8(name).is_err() {
                let msg = format!("invalid label name '{}'", String::from_utf8_lossy(name));
                return Err(invalid_labels(ls, &msg));
            }
        } else {
            if !legacy_name_ok(name) {
                let msg = format!("invalid label name '{}'", String::from_utf8_lossy(name));
                return Err(invalid_labels(ls, &msg));
            }
            if name.contains(&b'.') {
                sanitize_at(ls, idx)?;
                // The label moved (or merged away); whatever is now at `idx` is checked.
                continue;
            }
        }
        if std::str::from_utf8(value).is_err() {
            let msg = format!("invalid label value '{}'", String::from_utf8_lossy(value));
            return Err(invalid_labels(ls, &msg));
        }
        if last.as_deref() == Some(name.as_slice()) {
            return Err(Invalid::new(
                Reason::DuplicateLabelNames,
                format!(
                    "profile with labels '{}' has duplicate label name: '{}'",
                    pairs_string(ls),
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        last = Some(name.clone());
        idx += 1;
    }
    Ok(())
}

fn invalid_labels(ls: &[Pair], what: &str) -> Invalid {
    Invalid::new(
        Reason::InvalidLabels,
        format!("invalid labels '{}' with error: {what}", pairs_string(ls)),
    )
}

/// The legacy label-name rule (`SanitizeLegacyLabelName` accepts): letters, `_` and `.`
/// anywhere, digits after the first byte.
fn legacy_name_ok(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().enumerate().all(|(i, &c)| {
            c.is_ascii_alphabetic() || c == b'_' || c == b'.' || (i > 0 && c.is_ascii_digit())
        })
}

/// Replaces the dots of label `idx`'s name with `_`: the label is removed and reinserted in
/// sorted position, dropped when the same pair already exists, or refused when the new name
/// already exists with another value.
fn sanitize_at(ls: &mut Vec<Pair>, idx: usize) -> Result<(), Invalid> {
    let orig = ls[idx].0.clone();
    let new: Vec<u8> = orig
        .iter()
        .map(|&c| if c == b'.' { b'_' } else { c })
        .collect();
    let before = pairs_string(ls);
    let (_, value) = ls.remove(idx);
    match ls.binary_search_by(|p| p.0.as_slice().cmp(&new)) {
        Ok(i) if ls[i].1 == value => Ok(()),
        Ok(_) => Err(Invalid::new(
            Reason::DuplicateLabelNames,
            format!(
                "profile with labels '{before}' has duplicate label name '{}' after label name sanitization from '{}'",
                String::from_utf8_lossy(&new),
                String::from_utf8_lossy(&orig)
            ),
        )),
        Err(i) => {
            ls.insert(i, (new, value));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> Vec<Pair> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn check(limits: &Limits, pairs: &[(&str, &str)]) -> Result<(), String> {
        validate(limits, &mut ls(pairs)).map_err(|e| e.message)
    }

    #[test]
    fn rendering_matches_label_pairs_string() {
        let mut v = ls(&[("service_name", "svc"), ("__name__", "qux")]);
        v.push((vec![0xc5], b"foo".to_vec()));
        v.push((b"foo".to_vec(), vec![0xc5]));
        sort(&mut v);
        assert_eq!(
            pairs_string(&v),
            "{__name__=\"qux\", foo=\"\\xc5\", service_name=\"svc\", \u{fffd}=\"foo\"}"
        );
        assert_eq!(pairs_string(&[]), "{}");
        assert_eq!(
            pairs_string(&ls(&[("a", "say \"hi\"\n")])),
            "{a=\"say \\\"hi\\\"\\n\"}"
        );
    }

    #[test]
    fn pyroscope_messages_in_pyroscope_order() {
        let l = Limits::default();
        let ok = [("__name__", "cpu"), ("service_name", "svc")];
        assert_eq!(check(&l, &ok), Ok(()));
        assert_eq!(
            check(&l, &[]),
            Err("error at least one label pair is required per profile".into())
        );
        let tight = Limits {
            max_label_names_per_series: 2,
            ..Limits::default()
        };
        assert_eq!(
            check(&tight, &[("service_name", "svc"), ("__name__", "cpu"), ("a", "b")]),
            Err("profile series '{__name__=\"cpu\", a=\"b\", service_name=\"svc\"}' has 3 label names; limit 2".into())
        );
        assert_eq!(
            check(&l, &[("service_name", "svc")]),
            Err("invalid labels '{service_name=\"svc\"}' with error: invalid metric name".into())
        );
        assert_eq!(
            check(&l, &[("__name__", "cpu")]),
            Err(
                "invalid labels '{__name__=\"cpu\"}' with error: service name is not provided"
                    .into()
            )
        );
        let long_name = "n".repeat(1025);
        let got = check(
            &l,
            &[
                ("__name__", "cpu"),
                ("service_name", "svc"),
                (&long_name, "v"),
            ],
        );
        assert_eq!(
            got,
            Err(format!(
                "profile with labels '{{__name__=\"cpu\", {long_name}=\"v\", service_name=\"svc\"}}' has label name too long: '{long_name}'"
            ))
        );
        let long_value = "v".repeat(2049);
        let got = check(
            &l,
            &[
                ("__name__", "cpu"),
                ("service_name", "svc"),
                ("k", &long_value),
            ],
        );
        assert!(
            got.unwrap_err()
                .ends_with(&format!("has label value too long: '{long_value}'"))
        );
        assert_eq!(
            check(&l, &[("__name__", "cpu"), ("service_name", "svc"), ("", "v")]),
            Err("invalid labels '{=\"v\", __name__=\"cpu\", service_name=\"svc\"}' with error: invalid label name ''".into())
        );
        assert_eq!(
            check(&l, &[("__name__", "cpu"), ("service_name", "svc"), ("a", "1"), ("a", "2")]),
            Err("profile with labels '{__name__=\"cpu\", a=\"1\", a=\"2\", service_name=\"svc\"}' has duplicate label name: 'a'".into())
        );
        // Dots and Unicode are fine while sanitisation is disabled (the default).
        assert_eq!(
            check(
                &l,
                &[
                    ("__name__", "cpu"),
                    ("service_name", "svc"),
                    ("k8s.pod", "x"),
                    ("é", "y")
                ]
            ),
            Ok(())
        );
        // Invalid UTF-8 in a value (only reachable through pprof sample labels).
        let mut v = ls(&ok);
        v.push((b"k".to_vec(), vec![0xc5]));
        assert_eq!(
            validate(&l, &mut v).unwrap_err().message,
            "invalid labels '{__name__=\"cpu\", k=\"\\xc5\", service_name=\"svc\"}' with error: invalid label value '\u{fffd}'"
        );
    }

    #[test]
    fn legacy_sanitisation() {
        let l = Limits {
            disable_label_sanitization: false,
            ..Limits::default()
        };
        let mut v = ls(&[
            ("__name__", "qux"),
            ("service_name", "svc"),
            ("label.name", "foo"),
        ]);
        validate(&l, &mut v).expect("renamed");
        assert_eq!(
            v,
            ls(&[
                ("__name__", "qux"),
                ("label_name", "foo"),
                ("service_name", "svc")
            ])
        );
        // The same pair already there: merged away.
        let mut v = ls(&[
            ("__name__", "qux"),
            ("service_name", "svc"),
            ("label.name", "foo"),
            ("label_name", "foo"),
        ]);
        validate(&l, &mut v).expect("merged");
        assert_eq!(v.len(), 3);
        // Pyroscope's own expectation for a clash.
        assert_eq!(
            check(&l, &[("__name__", "qux"), ("service_name", "svc"), ("label.name", "bar"), ("label_name", "foo")]),
            Err("profile with labels '{__name__=\"qux\", label.name=\"bar\", label_name=\"foo\", service_name=\"svc\"}' has duplicate label name 'label_name' after label name sanitization from 'label.name'".into())
        );
        assert_eq!(
            check(&l, &[("__name__", "qux"), ("service_name", "svc"), ("é", "y")]),
            Err("invalid labels '{__name__=\"qux\", service_name=\"svc\", é=\"y\"}' with error: invalid label name 'é'".into())
        );
        assert_eq!(
            check(&l, &[("__name__", "qux"), ("service_name", "svc"), ("9a", "y")]),
            Err("invalid labels '{9a=\"y\", __name__=\"qux\", service_name=\"svc\"}' with error: invalid label name '9a'".into())
        );
    }

    #[test]
    fn service_name_default_and_relabeling() {
        let mut v = ls(&[("__name__", "godeltaprof_memory")]);
        ensure_service_name(&mut v);
        default_relabel(&mut v);
        sort(&mut v);
        assert_eq!(
            v,
            ls(&[
                ("__delta__", "false"),
                ("__name__", "memory"),
                ("service_name", "unknown_service")
            ])
        );
        let mut v = ls(&[
            ("__name__", "wall"),
            ("__type__", "cpu"),
            ("service_name", ""),
        ]);
        ensure_service_name(&mut v);
        default_relabel(&mut v);
        assert_eq!(get(&v, "__name__"), b"process_cpu");
        // The empty service_name makes both go, as in Pyroscope.
        drop_empty(&mut v);
        assert_eq!(get(&v, "service_name"), b"");
        assert_eq!(v.len(), 2);
        assert_eq!(size(&ls(&[("ab", "cde")])), 5);
    }
}
