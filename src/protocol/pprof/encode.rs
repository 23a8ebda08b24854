//! The encoder: fields in number order, repeated scalars packed, default values left out
//! (proto3), as Go's and prost's encoders write them. Lengths of nested messages are
//! computed before they are written, so nothing is built twice and nothing is allocated
//! per sample.

use super::model::{Function, Label, Location, Mapping, Profile, Sample, ValueType};

/// A capacity hint for the encoding of `p` (its input size, which a normalised profile
/// rarely exceeds).
pub fn encoded_len_hint(p: &Profile) -> usize {
    p.buf.len() + 64
}

/// The exact size of `encode(p)` (Go's `SizeVT`), computed without encoding.
pub fn encoded_len(p: &Profile) -> usize {
    let vts: usize = p
        .sample_type
        .iter()
        .map(|vt| embedded_len(value_type_len(vt)))
        .sum();
    let samples: usize = p
        .samples
        .iter()
        .map(|s| embedded_len(sample_len(p, s)))
        .sum();
    let mappings: usize = p
        .mappings
        .iter()
        .map(|m| embedded_len(mapping_len(m)))
        .sum();
    let locations: usize = p
        .locations
        .iter()
        .map(|l| embedded_len(location_len(p, l)))
        .sum();
    let functions: usize = p
        .functions
        .iter()
        .map(|f| embedded_len(fields_len(&function_fields(f))))
        .sum();
    let strings: usize = p
        .strings
        .iter()
        .map(|r| embedded_len(r.end.saturating_sub(r.start) as usize))
        .sum();
    vts + samples
        + mappings
        + locations
        + functions
        + strings
        + uint_len(p.drop_frames as u64)
        + uint_len(p.keep_frames as u64)
        + uint_len(p.time_nanos as u64)
        + uint_len(p.duration_nanos as u64)
        + p.period_type
            .as_ref()
            .map_or(0, |pt| embedded_len(value_type_len(pt)))
        + uint_len(p.period as u64)
        + packed_len(p.comments.iter().map(|c| *c as u64))
        + uint_len(p.default_sample_type as u64)
}

fn function_fields(f: &Function) -> [u64; 5] {
    [
        f.id,
        f.name as u64,
        f.system_name as u64,
        f.filename as u64,
        f.start_line as u64,
    ]
}

/// Serializes `p`.
pub fn encode(p: &Profile) -> Vec<u8> {
    encode_with_samples(p, &p.samples)
}

/// Serializes `p` with `samples` (ranges into `p`'s arrays) in place of its own: one part of
/// a profile split by sample labels. The tables are written whole.
pub fn encode_with_samples(p: &Profile, samples: &[Sample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len_hint(p));
    head(&mut out, p);
    samples_into(&mut out, p, samples);
    tail(&mut out, p);
    out
}

/// The parts of a split profile: [`encode_with_samples`] for several sample selections of
/// one profile, with everything but the samples (the tables, which every part repeats)
/// encoded once and copied into each part.
pub struct PartEncoder {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl PartEncoder {
    pub fn new(p: &Profile) -> Self {
        let mut head_bytes = Vec::new();
        head(&mut head_bytes, p);
        let mut tail_bytes = Vec::with_capacity(encoded_len_hint(p));
        tail(&mut tail_bytes, p);
        Self {
            head: head_bytes,
            tail: tail_bytes,
        }
    }

    /// `encode_with_samples(p, samples)`, `p` being the profile this encoder was made for.
    pub fn encode(&self, p: &Profile, samples: &[Sample]) -> Vec<u8> {
        let sample_bytes: usize = samples
            .iter()
            .map(|s| embedded_len(SampleLens::of(p, s).total()))
            .sum();
        let mut out = Vec::with_capacity(self.head.len() + sample_bytes + self.tail.len());
        out.extend_from_slice(&self.head);
        samples_into(&mut out, p, samples);
        out.extend_from_slice(&self.tail);
        out
    }
}

/// The fields before the samples: `sample_type` (1).
fn head(out: &mut Vec<u8>, p: &Profile) {
    for vt in &p.sample_type {
        embedded(out, 1, value_type_len(vt));
        value_type(out, vt);
    }
}

/// `sample` (2).
fn samples_into(out: &mut Vec<u8>, p: &Profile, samples: &[Sample]) {
    for s in samples {
        let lens = SampleLens::of(p, s);
        embedded(out, 2, lens.total());
        sample(out, p, s, &lens);
    }
}

/// The fields after the samples: the tables (3 to 6) and the scalars (7 to 14).
fn tail(out: &mut Vec<u8>, p: &Profile) {
    for m in &p.mappings {
        embedded(out, 3, mapping_len(m));
        mapping(out, m);
    }
    for l in &p.locations {
        embedded(out, 4, location_len(p, l));
        location(out, p, l);
    }
    for f in &p.functions {
        let fields = function_fields(f);
        embedded(out, 5, fields_len(&fields));
        write_fields(out, &fields);
    }
    for r in &p.strings {
        let s = p.buf.get(r.start as usize..r.end as usize).unwrap_or(&[]);
        embedded(out, 6, s.len());
        out.extend_from_slice(s);
    }
    uint(out, 7, p.drop_frames as u64);
    uint(out, 8, p.keep_frames as u64);
    uint(out, 9, p.time_nanos as u64);
    uint(out, 10, p.duration_nanos as u64);
    if let Some(pt) = &p.period_type {
        embedded(out, 11, value_type_len(pt));
        value_type(out, pt);
    }
    uint(out, 12, p.period as u64);
    packed(out, 13, p.comments.iter().map(|c| *c as u64));
    uint(out, 14, p.default_sample_type as u64);
}

#[inline]
fn varint_len(v: u64) -> usize {
    // 1 byte per 7 bits, at least 1.
    (64 - (v | 1).leading_zeros()).div_ceil(7) as usize
}

#[inline]
fn varint(out: &mut Vec<u8>, mut v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let mut buf = [0u8; 10];
    let mut n = 0;
    while v >= 0x80 {
        buf[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    out.extend_from_slice(&buf[..=n]);
}

/// The key of field `field` (all field numbers here are below 16: one byte).
#[inline]
fn key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    out.push((field << 3) | wire_type);
}

/// A varint field, left out when zero.
#[inline]
fn uint(out: &mut Vec<u8>, field: u8, v: u64) {
    if v != 0 {
        key(out, field, 0);
        varint(out, v);
    }
}

#[inline]
fn uint_len(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v) }
}

/// The key and length of a length-delimited field whose body follows.
#[inline]
fn embedded(out: &mut Vec<u8>, field: u8, len: usize) {
    key(out, field, 2);
    varint(out, len as u64);
}

#[inline]
fn embedded_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Varint fields numbered 1.. in order (zeros left out).
fn write_fields(out: &mut Vec<u8>, fields: &[u64]) {
    for (i, v) in fields.iter().enumerate() {
        uint(out, i as u8 + 1, *v);
    }
}

fn fields_len(fields: &[u64]) -> usize {
    fields.iter().map(|v| uint_len(*v)).sum()
}

/// A packed repeated varint field (left out when empty).
fn packed(out: &mut Vec<u8>, field: u8, values: impl Iterator<Item = u64> + Clone) {
    let len: usize = values.clone().map(varint_len).sum();
    if len > 0 {
        embedded(out, field, len);
        for v in values {
            varint(out, v);
        }
    }
}

fn packed_len(values: impl Iterator<Item = u64>) -> usize {
    let len: usize = values.map(varint_len).sum();
    if len > 0 { embedded_len(len) } else { 0 }
}

fn value_type_len(vt: &ValueType) -> usize {
    uint_len(vt.r#type as u64) + uint_len(vt.unit as u64)
}

fn value_type(out: &mut Vec<u8>, vt: &ValueType) {
    uint(out, 1, vt.r#type as u64);
    uint(out, 2, vt.unit as u64);
}

fn label_fields(l: &Label) -> [u64; 4] {
    [l.key as u64, l.str as u64, l.num as u64, l.num_unit as u64]
}

/// The lengths of one sample's parts, computed once and used for its header and its body.
struct SampleLens {
    /// Packed location ids, packed values (bodies only, 0 when empty), all labels.
    locations: usize,
    values: usize,
    labels: usize,
}

impl SampleLens {
    fn of(p: &Profile, s: &Sample) -> Self {
        Self {
            locations: p.sample_locations(s).iter().map(|v| varint_len(*v)).sum(),
            values: p
                .sample_values(s)
                .iter()
                .map(|v| varint_len(*v as u64))
                .sum(),
            labels: p
                .sample_labels(s)
                .iter()
                .map(|l| embedded_len(fields_len(&label_fields(l))))
                .sum(),
        }
    }

    fn total(&self) -> usize {
        let packed = |n: usize| if n > 0 { embedded_len(n) } else { 0 };
        packed(self.locations) + packed(self.values) + self.labels
    }
}

fn sample_len(p: &Profile, s: &Sample) -> usize {
    SampleLens::of(p, s).total()
}

fn sample(out: &mut Vec<u8>, p: &Profile, s: &Sample, lens: &SampleLens) {
    if lens.locations > 0 {
        embedded(out, 1, lens.locations);
        for v in p.sample_locations(s) {
            varint(out, *v);
        }
    }
    if lens.values > 0 {
        embedded(out, 2, lens.values);
        for v in p.sample_values(s) {
            varint(out, *v as u64);
        }
    }
    for l in p.sample_labels(s) {
        let f = label_fields(l);
        embedded(out, 3, fields_len(&f));
        write_fields(out, &f);
    }
}

fn mapping_fields(m: &Mapping) -> [u64; 10] {
    [
        m.id,
        m.memory_start,
        m.memory_limit,
        m.file_offset,
        m.filename as u64,
        m.build_id as u64,
        u64::from(m.has_functions),
        u64::from(m.has_filenames),
        u64::from(m.has_line_numbers),
        u64::from(m.has_inline_frames),
    ]
}

fn mapping_len(m: &Mapping) -> usize {
    fields_len(&mapping_fields(m))
}

fn mapping(out: &mut Vec<u8>, m: &Mapping) {
    write_fields(out, &mapping_fields(m));
}

fn location_len(p: &Profile, l: &Location) -> usize {
    uint_len(l.id)
        + uint_len(l.mapping_id)
        + uint_len(l.address)
        + p.location_lines(l)
            .iter()
            .map(|line| embedded_len(uint_len(line.function_id) + uint_len(line.line as u64)))
            .sum::<usize>()
        + uint_len(u64::from(l.is_folded))
}

fn location(out: &mut Vec<u8>, p: &Profile, l: &Location) {
    uint(out, 1, l.id);
    uint(out, 2, l.mapping_id);
    uint(out, 3, l.address);
    for line in p.location_lines(l) {
        embedded(
            out,
            4,
            uint_len(line.function_id) + uint_len(line.line as u64),
        );
        uint(out, 1, line.function_id);
        uint(out, 2, line.line as u64);
    }
    uint(out, 5, u64::from(l.is_folded));
}
