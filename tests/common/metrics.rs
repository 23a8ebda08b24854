//! A parsed `/metrics` scrape.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// A parsed Prometheus text exposition: series key (`name{a="1",b="2"}`, labels sorted by
/// name; `name` alone without labels) → value.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub series: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut series = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad metric value in {line:?}")),
            };
            series.insert(normalise_key(key), value);
        }
        Metrics { series }
    }

    /// The value of one series; `labels` in any order.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series.get(&series_key(name, labels)).copied()
    }

    /// Like [`get`](Self::get) but panics with the scrape when the series is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            panic!(
                "series {} missing; scrape has:\n{}",
                series_key(name, labels),
                self.names_like(name)
            )
        })
    }

    /// Sum of every series of a metric (all label values).
    pub fn sum(&self, name: &str) -> f64 {
        self.series
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    fn names_like(&self, name: &str) -> String {
        self.series
            .iter()
            .filter(|(k, _)| k.starts_with(name))
            .map(|(k, v)| format!("  {k} {v}\n"))
            .collect()
    }
}

/// `name{k="v",...}` with labels sorted by name.
pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut l: Vec<_> = labels.to_vec();
    l.sort();
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn normalise_key(key: &str) -> String {
    let Some((name, rest)) = key.split_once('{') else {
        return key.to_string();
    };
    let inner = rest.strip_suffix('}').unwrap_or(rest);
    // Label values in our metrics never contain `",`; split on it.
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut s = inner;
    while !s.is_empty() {
        let (k, after) = s.split_once("=\"").expect("label =\"");
        let end = after.find('"').expect("closing quote");
        pairs.push((k.to_string(), after[..end].to_string()));
        s = after[end + 1..].trim_start_matches(',');
    }
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}
