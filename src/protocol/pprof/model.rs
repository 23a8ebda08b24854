//! The in-memory profile. Strings are byte ranges into the buffer the profile was decoded
//! from; the repeated fields of samples (location ids, values, labels) and of locations
//! (lines) are flat arrays indexed by ranges.

use std::ops::Range;

use bytes::Bytes;

/// pprof `ValueType`: (type, unit) as string indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ValueType {
    pub r#type: i64,
    pub unit: i64,
}

/// pprof `Label`: a string label when `str != 0`, numeric otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Label {
    pub key: i64,
    pub str: i64,
    pub num: i64,
    pub num_unit: i64,
}

/// One sample: its location ids (leaf first), values and labels, as ranges into
/// [`Profile::location_ids`], [`Profile::values`] and [`Profile::labels`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sample {
    pub locations: Range<u32>,
    pub values: Range<u32>,
    pub labels: Range<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mapping {
    pub id: u64,
    pub memory_start: u64,
    pub memory_limit: u64,
    pub file_offset: u64,
    pub filename: i64,
    pub build_id: i64,
    pub has_functions: bool,
    pub has_filenames: bool,
    pub has_line_numbers: bool,
    pub has_inline_frames: bool,
}

/// A location; its lines are a range into [`Profile::lines`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub id: u64,
    pub mapping_id: u64,
    pub address: u64,
    pub lines: Range<u32>,
    pub is_folded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Line {
    pub function_id: u64,
    pub line: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Function {
    pub id: u64,
    pub name: i64,
    pub system_name: i64,
    pub filename: i64,
    pub start_line: i64,
}

/// A decoded pprof `Profile`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Profile {
    /// The message the profile was decoded from; `strings` are ranges into it.
    pub buf: Bytes,
    pub strings: Vec<Range<u32>>,
    pub sample_type: Vec<ValueType>,
    pub samples: Vec<Sample>,
    pub location_ids: Vec<u64>,
    pub values: Vec<i64>,
    pub labels: Vec<Label>,
    pub mappings: Vec<Mapping>,
    pub locations: Vec<Location>,
    pub lines: Vec<Line>,
    pub functions: Vec<Function>,
    pub drop_frames: i64,
    pub keep_frames: i64,
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub period_type: Option<ValueType>,
    pub period: i64,
    pub comments: Vec<i64>,
    pub default_sample_type: i64,
}

fn slice<'a, T>(all: &'a [T], r: &Range<u32>) -> &'a [T] {
    all.get(r.start as usize..r.end as usize).unwrap_or(&[])
}

impl Profile {
    /// String `i` of the string table; `None` when out of range.
    pub fn string(&self, i: i64) -> Option<&[u8]> {
        let r = self.strings.get(usize::try_from(i).ok()?)?;
        self.buf.get(r.start as usize..r.end as usize)
    }

    /// Replaces string `i` (in range) with `s`. The strings live in one shared buffer, so
    /// this copies the buffer once with `s` appended: for rare repairs, not hot paths.
    pub fn set_string(&mut self, i: i64, s: &[u8]) {
        let Some(slot) = usize::try_from(i).ok().filter(|i| *i < self.strings.len()) else {
            return;
        };
        let mut buf = Vec::with_capacity(self.buf.len() + s.len());
        buf.extend_from_slice(&self.buf);
        let start = buf.len() as u32;
        buf.extend_from_slice(s);
        self.strings[slot] = start..buf.len() as u32;
        self.buf = Bytes::from(buf);
    }

    /// The location ids of sample `s`, leaf first.
    pub fn sample_locations(&self, s: &Sample) -> &[u64] {
        slice(&self.location_ids, &s.locations)
    }

    pub fn sample_values(&self, s: &Sample) -> &[i64] {
        slice(&self.values, &s.values)
    }

    pub fn sample_labels(&self, s: &Sample) -> &[Label] {
        slice(&self.labels, &s.labels)
    }

    pub fn location_lines(&self, l: &Location) -> &[Line] {
        slice(&self.lines, &l.lines)
    }

    /// Sum of each sample type's values over all samples (saturating), the quantity
    /// normalisation preserves for non-negative samples.
    pub fn value_sums(&self) -> Vec<i64> {
        let mut sums = vec![0i64; self.sample_type.len()];
        for s in &self.samples {
            for (sum, v) in sums.iter_mut().zip(self.sample_values(s)) {
                *sum = sum.saturating_add(*v);
            }
        }
        sums
    }
}
