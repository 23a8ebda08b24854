//! The identity in an X.509 certificate: its subject, as an RFC 4514 string and as CN / O /
//! OU values, and its subjectAltName entries. For mapping an already *verified* mTLS client
//! certificate to a tenant: this checks the certificate's structure but verifies nothing
//! (no signature, validity period or chain; the TLS layer does that).
//!
//! A small, dependency-free DER reader: a cursor over definite-length DER walks the fixed
//! shape of `Certificate` (RFC 5280 §4.1), so nesting is bounded by that shape and never by
//! the input (no recursion). Every declared length is checked against what its parent has
//! left before anything is sliced, nothing is indexed in a way that can panic, and the only
//! allocations are of values already checked against [`MAX_STRING_LEN`], at most
//! [`MAX_SUBJECT_ATTRIBUTES`] + [`MAX_SAN_ENTRIES`] of them.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest certificate accepted, in bytes. Client certificates are typically 0.5–2 KiB and
/// even ones carrying hundreds of SANs stay far below this; it bounds the work per handshake
/// and everything derived from the input (the subject string is at most a few times it).
pub const MAX_CERT_LEN: usize = 64 * 1024;

/// Most attributes (AttributeTypeAndValue) in the subject, over all its RDNs. Real subjects
/// carry fewer than ten; this bounds the output vectors and the number of allocations.
pub const MAX_SUBJECT_ATTRIBUTES: usize = 64;

/// Most subjectAltName entries (GeneralName) of any kind, counted whether kept or skipped.
/// Even multi-domain server certificates stay within ~100 SANs and a client certificate has
/// a handful; this bounds the output vectors.
pub const MAX_SAN_ENTRIES: usize = 256;

/// Longest attribute value or SAN entry, in bytes of its DER content. RFC 5280's upper
/// bounds are far smaller (64 for CN / O / OU, 255 for an email address, 253 for a DNS
/// name); 1024 leaves room for long URIs while bounding each allocation.
pub const MAX_STRING_LEN: usize = 1024;

/// What a certificate says about who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertIdentity {
    /// The subject as an RFC 4514 string, most significant RDN last, as Go's
    /// `pkix.Name.String()` prints it: `CN=agent-1,OU=ops,O=Team A,C=DE` for a subject
    /// written C, O, OU, CN in the DER (RFC 4514 §2.1 reverses the sequence).
    ///
    /// Short names for CN, L, ST, O, OU, C, STREET, DC, UID and SERIALNUMBER (2.5.4.5) when
    /// the value is one of the string types below; any other type (emailAddress included)
    /// as its dotted OID with `#` and the hex of the value's DER (`1.2.840.113549.1.9.1=
    /// #1611…`), a known type with a non-string value as `CN=#0201…` (§2.4). The attributes
    /// of a multi-valued RDN are joined with `+`, in DER order. Values are escaped per
    /// RFC 4514 §2.4: `\` before `, + " \ < > ;`, a leading `#` or space and a trailing
    /// space; NUL and the other C0 controls and DEL as `\hh` (§2.4 allows escaping any
    /// character; this keeps the string printable). Hex is lowercase.
    pub subject: String,
    /// The last CN with a string value, if several.
    pub common_name: Option<String>,
    /// Every O with a string value, in DER order.
    pub organization: Vec<String>,
    /// Every OU with a string value, in DER order.
    pub organizational_unit: Vec<String>,
    /// subjectAltName (2.5.29.17) dNSName [2] entries, in order.
    pub dns_names: Vec<String>,
    /// subjectAltName rfc822Name [1] entries, in order.
    pub emails: Vec<String>,
    /// subjectAltName uniformResourceIdentifier [6] entries, in order.
    pub uris: Vec<String>,
    /// subjectAltName iPAddress [7] entries as `std::net::IpAddr` prints them
    /// (`192.0.2.7`, `2001:db8::1`).
    pub ips: Vec<String>,
}

/// Why a certificate's identity could not be read. Offsets count bytes from the start of
/// the input and point at the tag of the element in question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("certificate is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("truncated: the element at offset {offset} ends inside its tag or length")]
    Truncated { offset: usize },
    #[error(
        "truncated: length {len} at offset {offset} runs past its parent ({remaining} bytes left)"
    )]
    LengthOverrun {
        offset: usize,
        len: usize,
        remaining: usize,
    },
    #[error("bad tag at offset {offset}: expected {expected}, found 0x{found:02x}")]
    BadTag {
        offset: usize,
        expected: &'static str,
        found: u8,
    },
    #[error("missing {expected} at offset {offset}")]
    Missing {
        offset: usize,
        expected: &'static str,
    },
    #[error("multi-byte tag number at offset {offset} (X.509 uses none)")]
    HighTagNumber { offset: usize },
    #[error("indefinite length at offset {offset} (DER needs definite lengths)")]
    IndefiniteLength { offset: usize },
    #[error("length too long at offset {offset}: {bytes} length bytes, at most 4 accepted")]
    LengthTooLong { offset: usize, bytes: u8 },
    #[error("length at offset {offset} is not in DER's shortest form")]
    NonMinimalLength { offset: usize },
    #[error("{len} bytes left over at offset {offset} after the end of {what}")]
    TrailingData {
        offset: usize,
        len: usize,
        what: &'static str,
    },
    #[error("empty RDN (SET) at offset {offset}")]
    EmptyRdn { offset: usize },
    #[error("too many attributes in the subject: more than {max}")]
    TooManyAttributes { max: usize },
    #[error("too many subjectAltName entries: more than {max}")]
    TooManySanEntries { max: usize },
    #[error("value at offset {offset} is {len} bytes, more than the {max}-byte limit")]
    StringTooLong {
        offset: usize,
        len: usize,
        max: usize,
    },
    #[error("{kind} at offset {offset}: {reason}")]
    BadString {
        offset: usize,
        kind: &'static str,
        reason: &'static str,
    },
    #[error("malformed OBJECT IDENTIFIER at offset {offset}")]
    BadOid { offset: usize },
    #[error("BOOLEAN at offset {offset} is not one byte long")]
    BadBoolean { offset: usize },
    #[error("iPAddress at offset {offset} is {len} bytes, not 4 or 16")]
    BadIpAddress { offset: usize, len: usize },
    #[error("second subjectAltName extension at offset {offset}")]
    DuplicateSan { offset: usize },
}

/// Reads the subject and subjectAltName of the DER-encoded certificate `der`.
pub fn identity(der: &[u8]) -> Result<CertIdentity, X509Error> {
    if der.len() > MAX_CERT_LEN {
        return Err(X509Error::TooLarge {
            len: der.len(),
            max: MAX_CERT_LEN,
        });
    }
    let mut input = Cursor {
        buf: der,
        pos: 0,
        base: 0,
    };
    let cert = input.next(SEQUENCE, "Certificate (SEQUENCE)")?;
    input.finish("the Certificate")?;

    let mut cert_parts = cert.children();
    let tbs = cert_parts.next(SEQUENCE, "tbsCertificate (SEQUENCE)")?;
    cert_parts.next(SEQUENCE, "signatureAlgorithm (SEQUENCE)")?;
    cert_parts.next(BIT_STRING, "signatureValue (BIT STRING)")?;
    cert_parts.finish("Certificate")?;

    let mut tbs_parts = tbs.children();
    if let Some(version) = tbs_parts.next_if(VERSION)? {
        let mut v = version.children();
        v.next(INTEGER, "version (INTEGER)")?;
        v.finish("version [0]")?;
    }
    tbs_parts.next(INTEGER, "serialNumber (INTEGER)")?;
    tbs_parts.next(SEQUENCE, "signature (AlgorithmIdentifier SEQUENCE)")?;
    tbs_parts.next(SEQUENCE, "issuer (Name SEQUENCE)")?;
    tbs_parts.next(SEQUENCE, "validity (SEQUENCE)")?;
    let subject = tbs_parts.next(SEQUENCE, "subject (Name SEQUENCE)")?;
    tbs_parts.next(SEQUENCE, "subjectPublicKeyInfo (SEQUENCE)")?;
    tbs_parts.next_if(ISSUER_UNIQUE_ID)?;
    tbs_parts.next_if(SUBJECT_UNIQUE_ID)?;
    let extensions = tbs_parts.next_if(EXTENSIONS)?;
    tbs_parts.finish("tbsCertificate")?;

    let mut id = CertIdentity::default();
    read_subject(&subject, &mut id)?;
    if let Some(extensions) = extensions {
        let mut wrapper = extensions.children();
        let list = wrapper.next(SEQUENCE, "Extensions (SEQUENCE)")?;
        wrapper.finish("extensions [3]")?;
        read_extensions(&list, &mut id)?;
    }
    Ok(id)
}

// Universal tags (all primitive but SEQUENCE and SET).
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OBJECT_IDENTIFIER: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const TELETEX_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const UNIVERSAL_STRING: u8 = 0x1c;
const BMP_STRING: u8 = 0x1e;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

// Context-specific tags of tbsCertificate.
const VERSION: u8 = 0xa0; // [0] EXPLICIT
const ISSUER_UNIQUE_ID: u8 = 0x81; // [1] IMPLICIT BIT STRING
const SUBJECT_UNIQUE_ID: u8 = 0x82; // [2] IMPLICIT BIT STRING
const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT

// GeneralName choices kept (IMPLICIT, so primitive like the strings they hold).
const GN_RFC822_NAME: u8 = 0x81;
const GN_DNS_NAME: u8 = 0x82;
const GN_URI: u8 = 0x86;
const GN_IP_ADDRESS: u8 = 0x87;

/// 2.5.29.17, the content of its OBJECT IDENTIFIER.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Attribute types printed by short name: the content of their OBJECT IDENTIFIER.
const ATTRIBUTE_NAMES: &[(&[u8], &str)] = &[
    (&[0x55, 0x04, 0x03], "CN"),           // 2.5.4.3
    (&[0x55, 0x04, 0x05], "SERIALNUMBER"), // 2.5.4.5
    (&[0x55, 0x04, 0x06], "C"),            // 2.5.4.6
    (&[0x55, 0x04, 0x07], "L"),            // 2.5.4.7
    (&[0x55, 0x04, 0x08], "ST"),           // 2.5.4.8
    (&[0x55, 0x04, 0x09], "STREET"),       // 2.5.4.9
    (&[0x55, 0x04, 0x0a], "O"),            // 2.5.4.10
    (&[0x55, 0x04, 0x0b], "OU"),           // 2.5.4.11
    // 0.9.2342.19200300.100.1.25
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        "DC",
    ),
    // 0.9.2342.19200300.100.1.1
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        "UID",
    ),
];

/// One DER element.
#[derive(Clone, Copy)]
struct Tlv<'a> {
    tag: u8,
    /// Offset of the tag in the whole input.
    offset: usize,
    /// Offset of the first content byte in the whole input.
    content_offset: usize,
    content: &'a [u8],
    /// Tag, length and content: the element's whole encoding.
    raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    fn children(&self) -> Cursor<'a> {
        Cursor {
            buf: self.content,
            pos: 0,
            base: self.content_offset,
        }
    }
}

/// Reads consecutive elements from `buf` (one parent's content).
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole input, for error messages.
    base: usize,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }

    /// The next element, whatever its tag.
    fn next_any(&mut self) -> Result<Tlv<'a>, X509Error> {
        let offset = self.offset();
        let rest = self.rest();
        let (&tag, after_tag) = rest.split_first().ok_or(X509Error::Truncated { offset })?;
        if tag & 0x1f == 0x1f {
            return Err(X509Error::HighTagNumber { offset });
        }
        let (&first, mut after_len) = after_tag
            .split_first()
            .ok_or(X509Error::Truncated { offset })?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let count = first & 0x7f;
            if count == 0 {
                return Err(X509Error::IndefiniteLength { offset });
            }
            if count > 4 {
                return Err(X509Error::LengthTooLong {
                    offset,
                    bytes: count,
                });
            }
            let (bytes, content) = after_len
                .split_at_checked(usize::from(count))
                .ok_or(X509Error::Truncated { offset })?;
            after_len = content;
            let value = bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            // DER: the long form only from 128 on, and no leading zero byte.
            if value < 0x80 || bytes.first() == Some(&0) {
                return Err(X509Error::NonMinimalLength { offset });
            }
            usize::try_from(value).unwrap_or(usize::MAX)
        };
        let content = after_len.get(..len).ok_or(X509Error::LengthOverrun {
            offset,
            len,
            remaining: after_len.len(),
        })?;
        let header_len = rest.len().saturating_sub(after_len.len());
        let total = header_len.saturating_add(len);
        let raw = rest.get(..total).ok_or(X509Error::Truncated { offset })?;
        self.pos = self.pos.saturating_add(total);
        Ok(Tlv {
            tag,
            offset,
            content_offset: offset.saturating_add(header_len),
            content,
            raw,
        })
    }

    /// The next element, which must be there and have tag `tag`.
    fn next(&mut self, tag: u8, expected: &'static str) -> Result<Tlv<'a>, X509Error> {
        let offset = self.offset();
        match self.rest().first() {
            None => Err(X509Error::Missing { offset, expected }),
            Some(&found) if found != tag => Err(X509Error::BadTag {
                offset,
                expected,
                found,
            }),
            Some(_) => self.next_any(),
        }
    }

    /// The next element if there is one with tag `tag` (an OPTIONAL or DEFAULT field).
    fn next_if(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, X509Error> {
        if self.rest().first() == Some(&tag) {
            self.next_any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails if anything is left.
    fn finish(&self, what: &'static str) -> Result<(), X509Error> {
        match self.rest().len() {
            0 => Ok(()),
            len => Err(X509Error::TrailingData {
                offset: self.offset(),
                len,
                what,
            }),
        }
    }
}

fn check_len(value: &Tlv<'_>) -> Result<(), X509Error> {
    if value.content.len() > MAX_STRING_LEN {
        return Err(X509Error::StringTooLong {
            offset: value.offset,
            len: value.content.len(),
            max: MAX_STRING_LEN,
        });
    }
    Ok(())
}

/// Name ::= SEQUENCE OF RelativeDistinguishedName;
/// RelativeDistinguishedName ::= SET SIZE (1..MAX) OF SEQUENCE { type OID, value ANY }.
fn read_subject(name: &Tlv<'_>, id: &mut CertIdentity) -> Result<(), X509Error> {
    let mut rdns: Vec<String> = Vec::new();
    let mut attributes = 0usize;
    let mut sequence = name.children();
    while !sequence.is_empty() {
        let set = sequence.next(SET, "RelativeDistinguishedName (SET)")?;
        let mut members = set.children();
        if members.is_empty() {
            return Err(X509Error::EmptyRdn { offset: set.offset });
        }
        let mut rdn = String::new();
        while !members.is_empty() {
            attributes += 1;
            if attributes > MAX_SUBJECT_ATTRIBUTES {
                return Err(X509Error::TooManyAttributes {
                    max: MAX_SUBJECT_ATTRIBUTES,
                });
            }
            let atv = members.next(SEQUENCE, "AttributeTypeAndValue (SEQUENCE)")?;
            let mut parts = atv.children();
            let ty = parts.next(OBJECT_IDENTIFIER, "attribute type (OBJECT IDENTIFIER)")?;
            if parts.is_empty() {
                return Err(X509Error::Missing {
                    offset: parts.offset(),
                    expected: "attribute value",
                });
            }
            let value = parts.next_any()?;
            parts.finish("AttributeTypeAndValue")?;
            check_len(&value)?;
            if !rdn.is_empty() {
                rdn.push('+');
            }
            push_attribute(&mut rdn, &ty, &value, id)?;
        }
        rdns.push(rdn);
    }
    rdns.reverse();
    id.subject = rdns.join(",");
    Ok(())
}

/// Appends `TYPE=value` to `out` and records CN / O / OU in `id`.
fn push_attribute(
    out: &mut String,
    ty: &Tlv<'_>,
    value: &Tlv<'_>,
    id: &mut CertIdentity,
) -> Result<(), X509Error> {
    let Some(&(_, name)) = ATTRIBUTE_NAMES.iter().find(|(oid, _)| *oid == ty.content) else {
        push_dotted_oid(out, ty)?;
        out.push_str("=#");
        push_hex(out, value.raw);
        return Ok(());
    };
    out.push_str(name);
    out.push('=');
    match decode_string(value)? {
        Some(text) => {
            push_escaped(out, &text);
            match name {
                "CN" => id.common_name = Some(text),
                "O" => id.organization.push(text),
                "OU" => id.organizational_unit.push(text),
                _ => {}
            }
        }
        None => {
            out.push('#');
            push_hex(out, value.raw);
        }
    }
    Ok(())
}

/// The text of a directory string (`None` for a value of another type). Its length is
/// checked against [`MAX_STRING_LEN`] already.
fn decode_string(value: &Tlv<'_>) -> Result<Option<String>, X509Error> {
    let bad = |kind, reason| X509Error::BadString {
        offset: value.offset,
        kind,
        reason,
    };
    let bytes = value.content;
    let text = match value.tag {
        UTF8_STRING => std::str::from_utf8(bytes)
            .map_err(|_| bad("UTF8String", "not UTF-8"))?
            .to_owned(),
        PRINTABLE_STRING => ascii(bytes).ok_or_else(|| bad("PrintableString", "not ASCII"))?,
        IA5_STRING => ascii(bytes).ok_or_else(|| bad("IA5String", "not ASCII"))?,
        // Read as Latin-1, as most software does (T.61 proper is all but unused).
        TELETEX_STRING => bytes.iter().map(|&b| char::from(b)).collect(),
        BMP_STRING => {
            let (units, odd) = bytes.as_chunks::<2>();
            if !odd.is_empty() {
                return Err(bad("BMPString", "odd length for UTF-16"));
            }
            char::decode_utf16(units.iter().map(|&u| u16::from_be_bytes(u)))
                .collect::<Result<String, _>>()
                .map_err(|_| bad("BMPString", "unpaired surrogate"))?
        }
        UNIVERSAL_STRING => {
            let (units, rest) = bytes.as_chunks::<4>();
            if !rest.is_empty() {
                return Err(bad("UniversalString", "length not a multiple of 4"));
            }
            units
                .iter()
                .map(|&u| char::from_u32(u32::from_be_bytes(u)))
                .collect::<Option<String>>()
                .ok_or_else(|| bad("UniversalString", "not a Unicode scalar value"))?
        }
        _ => return Ok(None),
    };
    Ok(Some(text))
}

fn ascii(bytes: &[u8]) -> Option<String> {
    if bytes.is_ascii() {
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    } else {
        None
    }
}

/// Appends `value` escaped per RFC 4514 §2.4.
fn push_escaped(out: &mut String, value: &str) {
    for (i, c) in value.char_indices() {
        let first = i == 0;
        let last = i.saturating_add(c.len_utf8()) == value.len();
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if first => out.push_str("\\#"),
            ' ' if first || last => out.push_str("\\ "),
            '\0'..='\x1f' | '\x7f' => {
                out.push('\\');
                push_hex(out, &[c as u8]);
            }
            _ => out.push(c),
        }
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
}

/// Appends the dotted-decimal form of an OBJECT IDENTIFIER (X.690 §8.19).
fn push_dotted_oid(out: &mut String, oid: &Tlv<'_>) -> Result<(), X509Error> {
    let bad = || X509Error::BadOid { offset: oid.offset };
    // Not empty, and the last subidentifier ends.
    match oid.content.last() {
        Some(&b) if b & 0x80 == 0 => {}
        _ => return Err(bad()),
    }
    let mut arc: u128 = 0;
    let mut starts_arc = true;
    let mut first_arc = true;
    for &b in oid.content {
        // 0x80 first would be a leading zero digit: not the shortest form.
        if starts_arc && b == 0x80 {
            return Err(bad());
        }
        arc = arc.checked_mul(128).ok_or_else(bad)? | u128::from(b & 0x7f);
        starts_arc = b & 0x80 == 0;
        if starts_arc {
            if first_arc {
                // The first subidentifier packs the first two arcs: 40 * x + y.
                let (x, y) = match arc {
                    0..40 => (0, arc),
                    40..80 => (1, arc - 40),
                    _ => (2, arc - 80),
                };
                let _ = write!(out, "{x}.{y}");
                first_arc = false;
            } else {
                let _ = write!(out, ".{arc}");
            }
            arc = 0;
        }
    }
    Ok(())
}

/// Extensions ::= SEQUENCE OF SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE,
/// extnValue OCTET STRING }. Only subjectAltName is read; a second one is an error
/// (RFC 5280 §4.2: an extension appears at most once), since the two could disagree.
fn read_extensions(list: &Tlv<'_>, id: &mut CertIdentity) -> Result<(), X509Error> {
    let mut extensions = list.children();
    let mut san_seen = false;
    while !extensions.is_empty() {
        let extension = extensions.next(SEQUENCE, "Extension (SEQUENCE)")?;
        let mut parts = extension.children();
        let oid = parts.next(OBJECT_IDENTIFIER, "extnID (OBJECT IDENTIFIER)")?;
        if let Some(critical) = parts.next_if(BOOLEAN)?
            && critical.content.len() != 1
        {
            return Err(X509Error::BadBoolean {
                offset: critical.offset,
            });
        }
        let value = parts.next(OCTET_STRING, "extnValue (OCTET STRING)")?;
        parts.finish("Extension")?;
        if oid.content == OID_SUBJECT_ALT_NAME {
            if san_seen {
                return Err(X509Error::DuplicateSan {
                    offset: extension.offset,
                });
            }
            san_seen = true;
            read_subject_alt_name(&value, id)?;
        }
    }
    Ok(())
}

/// SubjectAltName ::= GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName, inside the
/// extension's OCTET STRING.
fn read_subject_alt_name(value: &Tlv<'_>, id: &mut CertIdentity) -> Result<(), X509Error> {
    let mut wrapper = value.children();
    let names = wrapper.next(SEQUENCE, "GeneralNames (SEQUENCE)")?;
    wrapper.finish("subjectAltName")?;
    let mut entries = names.children();
    let mut count = 0usize;
    while !entries.is_empty() {
        count += 1;
        if count > MAX_SAN_ENTRIES {
            return Err(X509Error::TooManySanEntries {
                max: MAX_SAN_ENTRIES,
            });
        }
        let name = entries.next_any()?;
        if name.tag & 0xc0 != 0x80 {
            return Err(X509Error::BadTag {
                offset: name.offset,
                expected: "GeneralName (context-specific tag)",
                found: name.tag,
            });
        }
        match name.tag {
            GN_RFC822_NAME => id.emails.push(ia5(&name, "rfc822Name")?),
            GN_DNS_NAME => id.dns_names.push(ia5(&name, "dNSName")?),
            GN_URI => id.uris.push(ia5(&name, "uniformResourceIdentifier")?),
            GN_IP_ADDRESS => id.ips.push(ip_address(&name)?),
            // The same four constructed: DER encodes them primitive.
            0xa1 | 0xa2 | 0xa6 | 0xa7 => {
                return Err(X509Error::BadTag {
                    offset: name.offset,
                    expected: "primitive GeneralName",
                    found: name.tag,
                });
            }
            // otherName, x400Address, directoryName, ediPartyName, registeredID.
            _ => {}
        }
    }
    Ok(())
}

fn ia5(name: &Tlv<'_>, kind: &'static str) -> Result<String, X509Error> {
    check_len(name)?;
    ascii(name.content).ok_or(X509Error::BadString {
        offset: name.offset,
        kind,
        reason: "not ASCII (IA5String)",
    })
}

fn ip_address(name: &Tlv<'_>) -> Result<String, X509Error> {
    let ip = if let Ok(v4) = <[u8; 4]>::try_from(name.content) {
        IpAddr::V4(Ipv4Addr::from(v4))
    } else if let Ok(v6) = <[u8; 16]>::try_from(name.content) {
        IpAddr::V6(Ipv6Addr::from(v6))
    } else {
        return Err(X509Error::BadIpAddress {
            offset: name.offset,
            len: name.content.len(),
        });
    };
    Ok(ip.to_string())
}

#[cfg(test)]
mod tests {
    use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
    use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, SanType};

    use super::*;

    // ---- certificates from rcgen ----

    fn rcgen_cert(subject: DistinguishedName, sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn dn(entries: Vec<(DnType, DnValue)>) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for (ty, value) in entries {
            dn.push(ty, value);
        }
        dn
    }

    fn custom(oid: &[u64]) -> DnType {
        DnType::CustomDnType(oid.to_vec())
    }

    fn ia5s(s: &str) -> Ia5String {
        Ia5String::try_from(s).unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rcgen_cn_o_ou_c() {
        let der = rcgen_cert(
            dn(vec![
                (DnType::CountryName, "DE".into()),
                (DnType::OrganizationName, "Team A".into()),
                (DnType::OrganizationalUnitName, "ops".into()),
                (DnType::CommonName, "agent-1".into()),
            ]),
            vec![],
        );
        assert_eq!(
            identity(&der).unwrap(),
            CertIdentity {
                subject: "CN=agent-1,OU=ops,O=Team A,C=DE".into(),
                common_name: Some("agent-1".into()),
                organization: strings(&["Team A"]),
                organizational_unit: strings(&["ops"]),
                ..CertIdentity::default()
            }
        );
    }

    #[test]
    fn rcgen_many_attribute_types_and_string_kinds() {
        let der = rcgen_cert(
            dn(vec![
                (
                    custom(&[0, 9, 2342, 19200300, 100, 1, 25]),
                    DnValue::Ia5String(ia5s("example")),
                ),
                (
                    DnType::CountryName,
                    DnValue::PrintableString(PrintableString::try_from("DE").unwrap()),
                ),
                (
                    DnType::StateOrProvinceName,
                    DnValue::BmpString(BmpString::try_from("Bäyern").unwrap()),
                ),
                (
                    DnType::LocalityName,
                    DnValue::UniversalString(UniversalString::try_from("München 🦀").unwrap()),
                ),
                (custom(&[2, 5, 4, 9]), "Hauptstraße 1".into()),
                (
                    DnType::OrganizationName,
                    DnValue::TeletexString(TeletexString::try_from("Team A").unwrap()),
                ),
                (
                    DnType::OrganizationalUnitName,
                    DnValue::Ia5String(ia5s("ops")),
                ),
                (DnType::CommonName, "agent-1".into()),
                (custom(&[0, 9, 2342, 19200300, 100, 1, 1]), "a1".into()),
                (
                    custom(&[2, 5, 4, 5]),
                    DnValue::PrintableString(PrintableString::try_from("42").unwrap()),
                ),
                (
                    custom(&[1, 2, 840, 113549, 1, 9, 1]),
                    DnValue::Ia5String(ia5s("agent@example.com")),
                ),
                (custom(&[1, 3, 6, 1, 4, 1, 55555, 1]), "x".into()),
            ]),
            vec![],
        );
        // Reversed; emailAddress and the private OID as dotted OID = '#' + hex of the value's
        // DER: IA5String (16), length 17, "agent@example.com"; UTF8String (0c), 1, "x".
        // (Checked once by hand: OpenSSL 3.0's `-nameopt RFC2253,-esc_msb,utf8` prints the same
        // but for its names street, serialNumber and emailAddress and uppercase hex.)
        let subject = "1.3.6.1.4.1.55555.1=#0c0178,\
                       1.2.840.113549.1.9.1=#16116167656e74406578616d706c652e636f6d,\
                       SERIALNUMBER=42,UID=a1,CN=agent-1,OU=ops,O=Team A,\
                       STREET=Hauptstraße 1,L=München 🦀,ST=Bäyern,C=DE,DC=example";
        assert_eq!(
            identity(&der).unwrap(),
            CertIdentity {
                subject: subject.into(),
                common_name: Some("agent-1".into()),
                organization: strings(&["Team A"]),
                organizational_unit: strings(&["ops"]),
                ..CertIdentity::default()
            }
        );
    }

    #[test]
    fn rcgen_san_of_every_kind() {
        let der = rcgen_cert(
            DistinguishedName::new(),
            vec![
                SanType::DnsName(ia5s("agent-1.example.com")),
                SanType::Rfc822Name(ia5s("agent@example.com")),
                SanType::URI(ia5s("spiffe://example.com/ns/ops/sa/agent-1")),
                SanType::IpAddress("192.0.2.7".parse().unwrap()),
                SanType::DnsName(ia5s("*.ops.example.com")),
                SanType::IpAddress("2001:db8::1".parse().unwrap()),
                SanType::IpAddress("::ffff:198.51.100.1".parse().unwrap()),
                SanType::Rfc822Name(ia5s("ops@example.com")),
                SanType::URI(ia5s("urn:example:agent")),
            ],
        );
        // An empty subject makes rcgen mark the SAN critical: the BOOLEAN is read too.
        assert_eq!(
            identity(&der).unwrap(),
            CertIdentity {
                dns_names: strings(&["agent-1.example.com", "*.ops.example.com"]),
                emails: strings(&["agent@example.com", "ops@example.com"]),
                uris: strings(&[
                    "spiffe://example.com/ns/ops/sa/agent-1",
                    "urn:example:agent"
                ]),
                ips: strings(&["192.0.2.7", "2001:db8::1", "::ffff:198.51.100.1"]),
                ..CertIdentity::default()
            }
        );
    }

    #[test]
    fn rcgen_values_needing_escapes() {
        let der = rcgen_cert(
            dn(vec![
                (DnType::OrganizationName, "Acme, Inc.".into()),
                (DnType::OrganizationalUnitName, " padded ".into()),
                (DnType::LocalityName, r#"a+b"c\d<e>f;g=h#i"#.into()),
                (DnType::StateOrProvinceName, "nul\0tab\tdel\x7f".into()),
                (custom(&[2, 5, 4, 9]), " ".into()),
                (DnType::CommonName, "#1 agent".into()),
            ]),
            vec![SanType::DnsName(ia5s("acme.example"))],
        );
        // RFC 4514 §2.4: '\' before , + " \ < > ; anywhere, a leading '#' or space and a
        // trailing space; '=' and a '#' not in front are left alone; controls as \hh.
        // (Checked once by hand: OpenSSL 3.0's `-nameopt RFC2253` prints the same but for
        // `street` and an uppercase `\7F`.)
        let subject = r#"CN=\#1 agent,STREET=\ ,ST=nul\00tab\09del\7f,L=a\+b\"c\\d\<e\>f\;g=h#i,OU=\ padded\ ,O=Acme\, Inc."#;
        let id = identity(&der).unwrap();
        assert_eq!(id.subject, subject);
        assert_eq!(id.common_name.as_deref(), Some("#1 agent"));
        assert_eq!(id.organization, strings(&["Acme, Inc."]));
        assert_eq!(id.organizational_unit, strings(&[" padded "]));
        assert_eq!(id.dns_names, strings(&["acme.example"]));
    }

    #[test]
    fn rcgen_non_ascii_utf8_cn() {
        let cn = "Jürgen Šmíd – 東京 🦀";
        let der = rcgen_cert(
            dn(vec![(DnType::CommonName, cn.into())]),
            vec![SanType::DnsName(ia5s("xn--jrgen-kva.example"))],
        );
        assert_eq!(
            identity(&der).unwrap(),
            CertIdentity {
                subject: format!("CN={cn}"),
                common_name: Some(cn.into()),
                dns_names: strings(&["xn--jrgen-kva.example"]),
                ..CertIdentity::default()
            }
        );
    }

    // ---- a certificate from another encoder ----

    /// Made once with OpenSSL 3.0 (ed25519 key, `-multivalue-rdn -utf8`):
    /// `-subj '/DC=com/DC=example/C=DE/ST=Bayern/O=Acme, Inc./OU=ops+OU=sre/CN=#1 agent+UID=a1/emailAddress=agent@example.com/serialNumber=42'`
    /// with SANs DNS, DNS, email, URI, IPv4, IPv6 and a critical basicConstraints.
    const OPENSSL_CERT_HEX: &str = "\
        30820326308202d8a003020102020107300506032b65703081cf31133011060a0992268993f22c6401191603636f6d31\
        173015060a0992268993f22c64011916076578616d706c65310b3009060355040613024445310f300d06035504080c06\
        42617965726e31133011060355040a0c0a41636d652c20496e632e3118300a060355040b0c036f7073300a060355040b\
        0c037372653123300f06035504030c082331206167656e743010060a0992268993f22c6401010c0261313120301e0609\
        2a864886f70d01090116116167656e74406578616d706c652e636f6d310b30090603550405130234323020170d323631\
        3230313231313335355a180f32313236313130373231313335355a3081cf31133011060a0992268993f22c6401191603\
        636f6d31173015060a0992268993f22c64011916076578616d706c65310b3009060355040613024445310f300d060355\
        04080c0642617965726e31133011060355040a0c0a41636d652c20496e632e3118300a060355040b0c036f7073300a06\
        0355040b0c037372653123300f06035504030c082331206167656e743010060a0992268993f22c6401010c0261313120\
        301e06092a864886f70d01090116116167656e74406578616d706c652e636f6d310b3009060355040513023432302a30\
        0506032b65700321003fff959ed749db06b108611948a48c574512d3a1f9a00538827a7c5d13a7aaf0a381d43081d130\
        1d0603551d0e041604148d5509efde57f2888118f882c07ffad409e0b52d301f0603551d230418301680148d5509efde\
        57f2888118f882c07ffad409e0b52d3081800603551d110479307782116167656e742e6578616d706c652e636f6d8211\
        2a2e6f70732e6578616d706c652e636f6d81116167656e74406578616d706c652e636f6d86247370696666653a2f2f65\
        78616d706c652e636f6d2f6e732f6f70732f73612f6167656e748704c0000207871020010db800000000000000000000\
        0001300c0603551d130101ff04023000300506032b6570034100420b1876765bd389a39ec2c180e4d19a1b90f7a6abfc\
        008d6d2ccbdfc1da0ebd0554c232e47b695c3cbd375db40618b6b75ecd86cc8444beb06ad32e78eab30c";

    fn unhex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|c| char::from(c).to_digit(16).unwrap() as u8)
            .collect();
        digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
    }

    #[test]
    fn openssl_certificate() {
        let der = unhex(OPENSSL_CERT_HEX);
        assert_eq!(der.len(), 810);
        // `openssl x509 -noout -subject -nameopt RFC2253` prints
        //   serialNumber=42,emailAddress=agent@example.com,UID=a1+CN=\#1 agent,OU=sre+OU=ops,
        //   O=Acme\, Inc.,ST=Bayern,C=DE,DC=example,DC=com
        // The same RDNs in the same order and the same escapes. By design this differs in
        // Go's names (SERIALNUMBER; emailAddress as a dotted OID with the hex of its DER) and
        // keeps a multi-valued RDN's attributes in DER order, as Go does (OpenSSL reverses
        // them too; a SET has no order).
        let subject = r"SERIALNUMBER=42,1.2.840.113549.1.9.1=#16116167656e74406578616d706c652e636f6d,CN=\#1 agent+UID=a1,OU=ops+OU=sre,O=Acme\, Inc.,ST=Bayern,C=DE,DC=example,DC=com";
        assert_eq!(
            identity(&der).unwrap(),
            CertIdentity {
                subject: subject.into(),
                common_name: Some("#1 agent".into()),
                organization: strings(&["Acme, Inc."]),
                organizational_unit: strings(&["ops", "sre"]),
                dns_names: strings(&["agent.example.com", "*.ops.example.com"]),
                emails: strings(&["agent@example.com"]),
                uris: strings(&["spiffe://example.com/ns/ops/sa/agent"]),
                ips: strings(&["192.0.2.7", "2001:db8::1"]),
            }
        );
    }

    // ---- certificates built by hand, for what rcgen cannot write ----

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const L: &[u8] = &[0x55, 0x04, 0x07];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    /// 1.2.3, a type without a short name.
    const OID_1_2_3: &[u8] = &[0x2a, 0x03];

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = (len as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (4 - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    fn atv(oid: &[u8], value: Vec<u8>) -> Vec<u8> {
        tlv(SEQUENCE, &[tlv(OBJECT_IDENTIFIER, oid), value].concat())
    }

    fn utf8(s: &str) -> Vec<u8> {
        tlv(UTF8_STRING, s.as_bytes())
    }

    fn rdn(atvs: &[Vec<u8>]) -> Vec<u8> {
        tlv(SET, &atvs.concat())
    }

    fn name(rdns: &[Vec<u8>]) -> Vec<u8> {
        tlv(SEQUENCE, &rdns.concat())
    }

    /// A subject of one RDN with one attribute.
    fn subject1(oid: &[u8], value: Vec<u8>) -> Vec<u8> {
        name(&[rdn(&[atv(oid, value)])])
    }

    fn extension(oid: &[u8], critical: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
        let flag = critical.map(|c| tlv(BOOLEAN, c)).unwrap_or_default();
        tlv(
            SEQUENCE,
            &[tlv(OBJECT_IDENTIFIER, oid), flag, tlv(OCTET_STRING, value)].concat(),
        )
    }

    fn san(entries: &[Vec<u8>]) -> Vec<u8> {
        extension(
            OID_SUBJECT_ALT_NAME,
            None,
            &tlv(SEQUENCE, &entries.concat()),
        )
    }

    /// A v3 certificate with `subject` and `extensions` (none: no [3] at all).
    fn cert(subject: &[u8], extensions: &[Vec<u8>]) -> Vec<u8> {
        let alg = tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, &[0x2b, 0x65, 0x70]));
        let validity = [tlv(0x17, b"250101000000Z"), tlv(0x17, b"350101000000Z")].concat();
        let mut tbs = [
            tlv(VERSION, &tlv(INTEGER, &[2])),
            tlv(INTEGER, &[1]),
            alg.clone(),
            subject1(CN, utf8("issuer")),
            tlv(SEQUENCE, &validity),
            subject.to_vec(),
            tlv(SEQUENCE, &[alg.clone(), tlv(BIT_STRING, &[0; 33])].concat()),
        ]
        .concat();
        if !extensions.is_empty() {
            tbs.extend(tlv(EXTENSIONS, &tlv(SEQUENCE, &extensions.concat())));
        }
        tlv(
            SEQUENCE,
            &[tlv(SEQUENCE, &tbs), alg, tlv(BIT_STRING, &[0; 65])].concat(),
        )
    }

    #[test]
    fn multi_valued_rdns_repeated_types_and_other_value_types() {
        let subject = name(&[
            rdn(&[atv(O, utf8("Team A")), atv(O, utf8("Team+B"))]),
            rdn(&[atv(OU, utf8("ops"))]),
            rdn(&[atv(OU, tlv(PRINTABLE_STRING, b"sre"))]),
            rdn(&[atv(CN, utf8("first"))]),
            rdn(&[atv(CN, utf8("second")), atv(CN, tlv(INTEGER, &[5]))]),
            // TeletexString read as Latin-1: "Mün".
            rdn(&[atv(L, tlv(TELETEX_STRING, &[0x4d, 0xfc, 0x6e]))]),
            // No short name: dotted, and the value's DER in hex even when not a string or
            // not valid as one.
            rdn(&[atv(OID_1_2_3, tlv(SEQUENCE, &[]))]),
            rdn(&[atv(OID_1_2_3, tlv(UTF8_STRING, &[0xff]))]),
            // 2.999.3: the first subidentifier is 80 + 999 = 1079 = 0x88 0x37.
            rdn(&[atv(&[0x88, 0x37, 0x03], utf8("x"))]),
        ]);
        let other_name = tlv(
            0xa0,
            &[
                tlv(
                    OBJECT_IDENTIFIER,
                    &[0x2b, 6, 1, 4, 1, 0x82, 0x37, 0x14, 2, 3],
                ),
                tlv(0xa0, &utf8("upn@example.com")),
            ]
            .concat(),
        );
        let der = cert(
            &subject,
            &[
                // basicConstraints, critical: skipped.
                extension(&[0x55, 0x1d, 0x13], Some(&[0xff]), &tlv(SEQUENCE, &[])),
                san(&[
                    other_name,
                    tlv(0x82, b"a.example"),
                    tlv(0xa4, &subject1(CN, utf8("directory"))),
                    tlv(0x88, OID_1_2_3),
                    tlv(0x87, &[10, 0, 0, 1]),
                    tlv(0x82, b""),
                ]),
            ],
        );
        assert_eq!(
            identity(&der).unwrap(),
            CertIdentity {
                subject: r"2.999.3=#0c0178,1.2.3=#0c01ff,1.2.3=#3000,L=Mün,CN=second+CN=#020105,CN=first,OU=sre,OU=ops,O=Team A+O=Team\+B".into(),
                // The last CN with a string value.
                common_name: Some("second".into()),
                organization: strings(&["Team A", "Team+B"]),
                organizational_unit: strings(&["ops", "sre"]),
                dns_names: strings(&["a.example", ""]),
                ips: strings(&["10.0.0.1"]),
                ..CertIdentity::default()
            }
        );
    }

    #[test]
    fn empty_subject_without_extensions() {
        assert_eq!(
            identity(&cert(&name(&[]), &[])).unwrap(),
            CertIdentity::default()
        );
    }

    #[test]
    fn bounds_are_inclusive() {
        let ous = |n: usize| {
            let rdns: Vec<_> = (0..n)
                .map(|i| rdn(&[atv(OU, utf8(&format!("u{i}")))]))
                .collect();
            name(&rdns)
        };
        let id = identity(&cert(&ous(MAX_SUBJECT_ATTRIBUTES), &[])).unwrap();
        assert_eq!(id.organizational_unit.len(), MAX_SUBJECT_ATTRIBUTES);
        assert_eq!(
            identity(&cert(&ous(MAX_SUBJECT_ATTRIBUTES + 1), &[])),
            Err(X509Error::TooManyAttributes {
                max: MAX_SUBJECT_ATTRIBUTES
            })
        );
        // Counted over all RDNs, multi-valued ones too.
        let one_rdn: Vec<_> = (0..=MAX_SUBJECT_ATTRIBUTES)
            .map(|_| atv(CN, utf8("x")))
            .collect();
        assert!(matches!(
            identity(&cert(&name(&[rdn(&one_rdn)]), &[])),
            Err(X509Error::TooManyAttributes { .. })
        ));

        let sans = |n: usize| san(&vec![tlv(0x82, b"x.example"); n]);
        let id = identity(&cert(&name(&[]), &[sans(MAX_SAN_ENTRIES)])).unwrap();
        assert_eq!(id.dns_names.len(), MAX_SAN_ENTRIES);
        assert_eq!(
            identity(&cert(&name(&[]), &[sans(MAX_SAN_ENTRIES + 1)])),
            Err(X509Error::TooManySanEntries {
                max: MAX_SAN_ENTRIES
            })
        );
        // Skipped kinds count too.
        let skipped = san(&vec![tlv(0x88, OID_1_2_3); MAX_SAN_ENTRIES + 1]);
        assert!(matches!(
            identity(&cert(&name(&[]), &[skipped])),
            Err(X509Error::TooManySanEntries { .. })
        ));

        let long = "a".repeat(MAX_STRING_LEN);
        let id = identity(&cert(&subject1(CN, utf8(&long)), &[])).unwrap();
        assert_eq!(id.common_name.as_deref(), Some(long.as_str()));
        let longer = "a".repeat(MAX_STRING_LEN + 1);
        for der in [
            cert(&subject1(CN, utf8(&longer)), &[]),
            cert(&subject1(OID_1_2_3, utf8(&longer)), &[]),
            cert(&name(&[]), &[san(&[tlv(0x82, longer.as_bytes())])]),
            cert(&name(&[]), &[san(&[tlv(0x86, longer.as_bytes())])]),
        ] {
            assert!(
                matches!(
                    identity(&der),
                    Err(X509Error::StringTooLong { len, max: MAX_STRING_LEN, .. }) if len == MAX_STRING_LEN + 1
                ),
                "{:?}",
                identity(&der)
            );
        }

        assert_eq!(
            identity(&vec![0; MAX_CERT_LEN + 1]),
            Err(X509Error::TooLarge {
                len: MAX_CERT_LEN + 1,
                max: MAX_CERT_LEN
            })
        );
        // A certificate just under the limit is read.
        let big: Vec<_> = (0..60).map(|_| rdn(&[atv(OU, utf8(&long))])).collect();
        let der = cert(&name(&big), &[]);
        assert!(der.len() <= MAX_CERT_LEN);
        assert_eq!(identity(&der).unwrap().organizational_unit.len(), 60);
    }

    #[test]
    fn malformed_headers() {
        use X509Error::*;
        assert_eq!(
            identity(&[]),
            Err(Missing {
                offset: 0,
                expected: "Certificate (SEQUENCE)"
            })
        );
        assert_eq!(identity(&[0x30]), Err(Truncated { offset: 0 }));
        assert_eq!(identity(&[0x30, 0x82, 0x01]), Err(Truncated { offset: 0 }));
        assert_eq!(
            identity(&[0x30, 0x80, 0x00, 0x00]),
            Err(IndefiniteLength { offset: 0 })
        );
        assert_eq!(
            identity(&[0x30, 0x85, 0, 0, 0, 0, 1, 0]),
            Err(LengthTooLong {
                offset: 0,
                bytes: 5
            })
        );
        assert_eq!(
            identity(&[0x30, 0x81, 0x01, 0x00]),
            Err(NonMinimalLength { offset: 0 })
        );
        let mut padded = vec![0x30, 0x82, 0x00, 0x80];
        padded.extend([0; 0x80]);
        assert_eq!(identity(&padded), Err(NonMinimalLength { offset: 0 }));
        // Where any tag is allowed (an attribute value); elsewhere it is just a bad tag.
        assert!(matches!(
            identity(&cert(&subject1(CN, vec![0x1f, 0x81, 0x00, 0x00]), &[])),
            Err(HighTagNumber { .. })
        ));
        assert!(matches!(
            identity(&[0x1f, 0x81, 0x00, 0x00]),
            Err(BadTag { found: 0x1f, .. })
        ));
        // A declared length of 0x7fffffff: checked against what is left, nothing reserved.
        assert_eq!(
            identity(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]),
            Err(LengthOverrun {
                offset: 0,
                len: 0x7fff_ffff,
                remaining: 0
            })
        );
        assert_eq!(
            identity(&[0x30, 0x07, 0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00]),
            Err(LengthOverrun {
                offset: 2,
                len: 0x7fff_ffff,
                remaining: 1
            })
        );
        let deep = cert(
            &name(&[]),
            &[san(&[vec![0x82, 0x84, 0x7f, 0xff, 0xff, 0xff]])],
        );
        assert!(matches!(
            identity(&deep),
            Err(LengthOverrun {
                len: 0x7fff_ffff,
                remaining: 0,
                ..
            })
        ));
        let deep = cert(&subject1(CN, vec![0x0c, 0x84, 0x7f, 0xff, 0xff, 0xff]), &[]);
        assert!(matches!(
            identity(&deep),
            Err(LengthOverrun {
                len: 0x7fff_ffff,
                remaining: 0,
                ..
            })
        ));
        assert_eq!(
            identity(&[0x31, 0x00]).unwrap_err().to_string(),
            "bad tag at offset 0: expected Certificate (SEQUENCE), found 0x31"
        );
        assert_eq!(
            identity(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff])
                .unwrap_err()
                .to_string(),
            "truncated: length 2147483647 at offset 0 runs past its parent (0 bytes left)"
        );
    }

    #[test]
    fn malformed_structure() {
        use X509Error::*;
        let good = cert(&subject1(CN, utf8("a")), &[]);
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            identity(&trailing),
            Err(TrailingData {
                offset: good.len(),
                len: 1,
                what: "the Certificate"
            })
        );
        // Certificate without signatureAlgorithm and signature.
        let tbs_only = tlv(SEQUENCE, &tlv(SEQUENCE, &tbs_content(&good)));
        assert!(matches!(
            identity(&tbs_only),
            Err(Missing {
                expected: "signatureAlgorithm (SEQUENCE)",
                ..
            })
        ));
        // An attribute with a third element, and one without a value.
        let three = tlv(
            SEQUENCE,
            &[tlv(OBJECT_IDENTIFIER, CN), utf8("a"), utf8("b")].concat(),
        );
        assert!(matches!(
            identity(&cert(&name(&[rdn(&[three])]), &[])),
            Err(TrailingData {
                what: "AttributeTypeAndValue",
                ..
            })
        ));
        let one = tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, CN));
        assert!(matches!(
            identity(&cert(&name(&[rdn(&[one])]), &[])),
            Err(Missing {
                expected: "attribute value",
                ..
            })
        ));
        assert!(matches!(
            identity(&cert(&name(&[tlv(SET, &[])]), &[])),
            Err(EmptyRdn { .. })
        ));
        assert!(matches!(
            identity(&cert(&name(&[tlv(SEQUENCE, &[])]), &[])),
            Err(BadTag {
                expected: "RelativeDistinguishedName (SET)",
                found: SEQUENCE,
                ..
            })
        ));
        // Malformed OIDs of types without a short name: empty, unterminated, a leading
        // 0x80, an arc beyond 128 bits.
        let huge_arc = [[0x2a].as_slice(), &[0xff; 19], &[0x7f]].concat();
        for oid in [&[][..], &[0x2a, 0x83], &[0x2a, 0x80, 0x01], &huge_arc] {
            assert!(
                matches!(
                    identity(&cert(&subject1(oid, utf8("x")), &[])),
                    Err(BadOid { .. })
                ),
                "{oid:02x?}"
            );
        }
        // A critical flag that is not one byte; a second subjectAltName.
        let bad_flag = extension(&[0x55, 0x1d, 0x13], Some(&[0xff, 0xff]), &[]);
        assert!(matches!(
            identity(&cert(&name(&[]), &[bad_flag])),
            Err(BadBoolean { .. })
        ));
        let one_san = san(&[tlv(0x82, b"a.example")]);
        assert!(matches!(
            identity(&cert(&name(&[]), &[one_san.clone(), one_san])),
            Err(DuplicateSan { .. })
        ));
        // GeneralName tags: universal, or one of the kept kinds constructed.
        for entry in [utf8("a.example"), tlv(0xa2, &utf8("a.example"))] {
            assert!(matches!(
                identity(&cert(&name(&[]), &[san(&[entry])])),
                Err(BadTag { .. })
            ));
        }
        for len in [0, 5, 15, 17] {
            let entry = tlv(0x87, &vec![1; len]);
            let der = cert(&name(&[]), &[san(std::slice::from_ref(&entry))]);
            assert_eq!(
                identity(&der),
                Err(BadIpAddress {
                    offset: san_entry_offset(&der, &entry),
                    len
                })
            );
        }
        // Extensions [3] with something after its SEQUENCE; something after the extensions.
        let mut der = cert(&name(&[]), &[]);
        let tbs = tbs_content(&der);
        let ext = tlv(EXTENSIONS, &[tlv(SEQUENCE, &[]), vec![0x05, 0x00]].concat());
        der = tlv(
            SEQUENCE,
            &[
                tlv(SEQUENCE, &[tbs.clone(), ext].concat()),
                signature_fields(),
            ]
            .concat(),
        );
        assert!(matches!(
            identity(&der),
            Err(TrailingData {
                what: "extensions [3]",
                ..
            })
        ));
        let der = tlv(
            SEQUENCE,
            &[
                tlv(SEQUENCE, &[tbs, vec![0x05, 0x00]].concat()),
                signature_fields(),
            ]
            .concat(),
        );
        assert!(matches!(
            identity(&der),
            Err(TrailingData {
                what: "tbsCertificate",
                ..
            })
        ));
    }

    /// The content of `der`'s tbsCertificate (a certificate from [`cert`]).
    fn tbs_content(der: &[u8]) -> Vec<u8> {
        let mut outer = Cursor {
            buf: der,
            pos: 0,
            base: 0,
        };
        let cert = outer.next_any().unwrap();
        cert.children().next_any().unwrap().content.to_vec()
    }

    /// signatureAlgorithm and signatureValue as [`cert`] writes them.
    fn signature_fields() -> Vec<u8> {
        let alg = tlv(SEQUENCE, &tlv(OBJECT_IDENTIFIER, &[0x2b, 0x65, 0x70]));
        [alg, tlv(BIT_STRING, &[0; 65])].concat()
    }

    /// The offset of `entry`, the only GeneralName of `cert(&name(&[]), &[san(&[entry])])`:
    /// the last thing in tbsCertificate, before the signature fields.
    fn san_entry_offset(der: &[u8], entry: &[u8]) -> usize {
        der.len() - signature_fields().len() - entry.len()
    }

    #[test]
    fn malformed_strings() {
        let kind_of = |der: Vec<u8>| match identity(&der) {
            Err(X509Error::BadString { kind, .. }) => kind,
            other => panic!("{other:?}"),
        };
        let cn = |value: Vec<u8>| cert(&subject1(CN, value), &[]);
        assert_eq!(kind_of(cn(tlv(UTF8_STRING, &[0xff]))), "UTF8String");
        assert_eq!(
            kind_of(cn(tlv(PRINTABLE_STRING, "é".as_bytes()))),
            "PrintableString"
        );
        assert_eq!(kind_of(cn(tlv(IA5_STRING, &[0x80]))), "IA5String");
        assert_eq!(kind_of(cn(tlv(BMP_STRING, &[0, 0x41, 0]))), "BMPString");
        assert_eq!(kind_of(cn(tlv(BMP_STRING, &[0xd8, 0x00]))), "BMPString");
        assert_eq!(
            kind_of(cn(tlv(UNIVERSAL_STRING, &[0, 0, 0x41]))),
            "UniversalString"
        );
        assert_eq!(
            kind_of(cn(tlv(UNIVERSAL_STRING, &[0, 0x11, 0, 0]))),
            "UniversalString"
        );
        assert_eq!(
            kind_of(cn(tlv(UNIVERSAL_STRING, &[0, 0, 0xd8, 0]))),
            "UniversalString"
        );
        let sans = |tag: u8| cert(&name(&[]), &[san(&[tlv(tag, "é".as_bytes())])]);
        assert_eq!(kind_of(sans(0x81)), "rfc822Name");
        assert_eq!(kind_of(sans(0x82)), "dNSName");
        assert_eq!(kind_of(sans(0x86)), "uniformResourceIdentifier");
        assert_eq!(
            identity(&cn(tlv(UTF8_STRING, &[0xff])))
                .unwrap_err()
                .to_string(),
            format!("UTF8String at offset {}: not UTF-8", cn_value_offset())
        );
    }

    /// The offset of the CN value in `cert(&subject1(CN, utf8("x")))`.
    fn cn_value_offset() -> usize {
        let der = cert(&subject1(CN, vec![0x0c, 0x01, 0xee]), &[]);
        der.windows(3)
            .position(|w| w == [0x0c, 0x01, 0xee])
            .unwrap()
    }

    // ---- hostile input ----

    fn samples() -> Vec<Vec<u8>> {
        let hand_built = cert(
            &name(&[
                rdn(&[atv(O, utf8("Acme, Inc.")), atv(OID_1_2_3, utf8("x"))]),
                rdn(&[atv(CN, tlv(BMP_STRING, &[0, 0x61]))]),
            ]),
            &[san(&[
                tlv(0x82, b"a.example"),
                tlv(0x81, b"a@example.com"),
                tlv(0x86, b"urn:a"),
                tlv(0x87, &[192, 0, 2, 1]),
            ])],
        );
        let rcgen = rcgen_cert(
            dn(vec![(DnType::CommonName, "agent-1".into())]),
            vec![SanType::IpAddress("2001:db8::1".parse().unwrap())],
        );
        vec![unhex(OPENSSL_CERT_HEX), hand_built, rcgen]
    }

    #[test]
    fn every_strict_prefix_is_an_error() {
        for der in samples() {
            assert!(identity(&der).is_ok());
            for n in 0..der.len() {
                assert!(identity(&der[..n]).is_err(), "prefix of {n} bytes");
            }
        }
    }

    #[test]
    fn random_byte_flips_never_panic() {
        let samples = samples();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut ok, mut err) = (0, 0);
        for i in 0..6000 {
            let mut der = samples[i % samples.len()].clone();
            for _ in 0..=next() % 4 {
                let at = (next() % der.len() as u64) as usize;
                der[at] ^= (next() % 255 + 1) as u8;
            }
            match identity(&der) {
                Ok(id) => {
                    ok += 1;
                    assert!(id.subject.len() <= 4 * der.len());
                }
                Err(_) => err += 1,
            }
            let cut = (next() % der.len() as u64) as usize;
            assert!(identity(&der[..cut]).is_err() || cut == der.len());
        }
        // Flips in keys, signatures and most text keep the structure; flips in headers do not.
        assert!(ok > 100 && err > 100, "ok {ok}, err {err}");
    }
}
