//! The ring as dskit stores it in its key-value store (docs/ring.md §4): a `ring.Desc`
//! protobuf (field numbers of grafana/dskit `ring/ring.proto`), snappy-compressed (dskit's
//! `ProtoCodec`).

use std::collections::BTreeMap;

use prost::Message as _;

use crate::protocol::snappy::{self, SnappyError};

/// `ring.Desc`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Desc {
    /// Instance ID → instance.
    #[prost(btree_map = "string, message", tag = "1")]
    pub ingesters: BTreeMap<String, InstanceDesc>,
}

/// `ring.InstanceDesc`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstanceDesc {
    /// `host:port` the instance serves on.
    #[prost(string, tag = "1")]
    pub addr: String,
    /// Last heartbeat, Unix seconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    #[prost(enumeration = "InstanceState", tag = "3")]
    pub state: i32,
    #[prost(uint32, repeated, tag = "6")]
    pub tokens: Vec<u32>,
    #[prost(string, tag = "7")]
    pub zone: String,
    #[prost(int64, tag = "8")]
    pub registered_timestamp: i64,
    #[prost(string, tag = "9")]
    pub id: String,
    #[prost(int64, tag = "10")]
    pub read_only_updated_timestamp: i64,
    #[prost(bool, tag = "11")]
    pub read_only: bool,
}

/// `ring.InstanceState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum InstanceState {
    Active = 0,
    Leaving = 1,
    Pending = 2,
    Joining = 3,
    Left = 4,
}

impl InstanceState {
    pub fn name(self) -> &'static str {
        match self {
            InstanceState::Active => "ACTIVE",
            InstanceState::Leaving => "LEAVING",
            InstanceState::Pending => "PENDING",
            InstanceState::Joining => "JOINING",
            InstanceState::Left => "LEFT",
        }
    }
}

/// Largest decoded ring accepted (a ring of 1000 instances with 512 tokens each is ~3 MB).
pub const MAX_DESC_BYTES: usize = 64 << 20;

/// Why a stored value is not a ring.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescError {
    #[error(transparent)]
    Snappy(#[from] SnappyError),
    #[error("ring.Desc: {0}")]
    Proto(String),
}

/// Decodes a value written by dskit's ring client.
///
/// # Errors
/// [`DescError`] when it is not snappy or not a `ring.Desc`.
pub fn decode(value: &[u8]) -> Result<Desc, DescError> {
    let plain = snappy::decode(value, MAX_DESC_BYTES)?;
    Desc::decode(plain.as_slice()).map_err(|e| DescError::Proto(e.to_string()))
}

/// Encodes a ring the way dskit stores it (snappy literals: any snappy reader accepts them).
pub fn encode(desc: &Desc) -> Vec<u8> {
    snappy::encode_literal(&desc.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_numbers_match_dskit() {
        // InstanceDesc{addr: "a:1", timestamp: 5, state: LEAVING, tokens: [7, 300], zone: "z",
        // id: "i"} written field by field with dskit's numbers.
        let inst = InstanceDesc {
            addr: "a:1".into(),
            timestamp: 5,
            state: InstanceState::Leaving as i32,
            tokens: vec![7, 300],
            zone: "z".into(),
            id: "i".into(),
            ..Default::default()
        };
        let want: Vec<u8> = vec![
            0x0a, 3, b'a', b':', b'1', // 1: addr
            0x10, 5, // 2: timestamp
            0x18, 1, // 3: state
            0x32, 3, 7, 0xac, 0x02, // 6: tokens, packed
            0x3a, 1, b'z', // 7: zone
            0x4a, 1, b'i', // 9: id
        ];
        assert_eq!(inst.encode_to_vec(), want);
        let mut desc = Desc::default();
        desc.ingesters.insert("i".into(), inst);
        let stored = encode(&desc);
        assert_eq!(decode(&stored), Ok(desc));
        assert!(decode(b"\x05not snappy").is_err());
    }
}
