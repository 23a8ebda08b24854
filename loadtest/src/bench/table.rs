//! Plain-text tables: a header row, right-aligned numeric columns, `-` for missing values.

/// A table under construction.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    /// Columns aligned left (text); the others are right-aligned.
    left: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `columns`: `(title, left-aligned)`.
    pub fn new(columns: &[(&str, bool)]) -> Self {
        Self {
            header: columns.iter().map(|(t, _)| (*t).to_owned()).collect(),
            left: columns.iter().map(|(_, l)| *l).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = width[i] - c.chars().count();
                if i > 0 {
                    s.push_str("  ");
                }
                if self.left[i] {
                    s.push_str(c);
                    if i + 1 < n {
                        s.push_str(&" ".repeat(pad));
                    }
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            s.trim_end().to_owned()
        };
        let mut out = line(&self.header);
        out.push('\n');
        let total: usize = width.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// A number with `decimals` decimals, or `-`.
pub fn num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "-".into(),
    }
}

/// Requests per second without decimals and with thousands separators, or `-`.
pub fn rate(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x >= 0.0 => thousands(x.round() as u64),
        _ => "-".into(),
    }
}

/// A ratio as `1.23×`, or `-`.
pub fn ratio(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.2}×"),
        _ => "-".into(),
    }
}

/// Bytes as MiB with one decimal, or `-`.
pub fn mib(v: Option<u64>) -> String {
    match v {
        Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        None => "-".into(),
    }
}

/// A byte size as people write it (`1 KiB`, `16 KiB`, `1500 B`).
pub fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_columns() {
        let mut t = Table::new(&[("path", true), ("req/s", false), ("note", true)]);
        t.row(vec!["direct".into(), rate(Some(19867.5)), "x".into()]);
        t.row(vec!["pyrogate io_uring".into(), rate(None)]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "path                req/s  note");
        assert_eq!(lines[1], "-".repeat(31));
        assert_eq!(lines[2], "direct             19,868  x");
        assert_eq!(lines[3], "pyrogate io_uring       -");
    }

    #[test]
    fn formats() {
        assert_eq!(num(Some(1.23456), 2), "1.23");
        assert_eq!(num(Some(f64::NAN), 2), "-");
        assert_eq!(ratio(Some(0.5)), "0.50×");
        assert_eq!(ratio(None), "-");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(mib(Some(17300 * 1024)), "16.9 MiB");
        assert_eq!(size(1024), "1 KiB");
        assert_eq!(size(16384), "16 KiB");
        assert_eq!(size(1500), "1500 B");
        assert_eq!(size(2 << 20), "2 MiB");
    }
}
