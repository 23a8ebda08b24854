//! The tenant of a request, by Pyroscope's rules (dskit's `tenant` package;
//! docs/distributor.md §1): with multitenancy off every request belongs to `anonymous`;
//! with it on, `X-Scope-OrgID` must name exactly one valid tenant.

/// The tenant of every request when multitenancy is off (dskit `DefaultTenantID`).
pub const DEFAULT_TENANT: &str = "anonymous";

/// dskit's `MaxTenantIDLength`.
pub const MAX_TENANT_ID_LENGTH: usize = 150;

/// Why a request has no usable tenant. The texts are dskit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// No `X-Scope-OrgID`, or an empty one (`user.ErrNoOrgID`).
    #[error("no org id")]
    NoOrgId,
    /// `byte` is printed as Go's `%c` prints a byte: as the code point of the same number
    /// (so a UTF-8 lead byte comes out as a Latin-1 letter).
    #[error("tenant ID '{id}' contains unsupported character '{}'", char::from(*.byte))]
    UnsupportedCharacter { id: String, byte: u8 },
    #[error("tenant ID is too long: max 150 characters")]
    TooLong,
    #[error("tenant ID is '.' or '..'")]
    Unsafe,
    /// `a|b`: several tenants, which a write may not name.
    #[error("multiple org IDs present")]
    Multiple,
}

/// dskit `ValidTenantID`: the character check comes before the length check.
pub fn validate(id: &[u8]) -> Result<(), TenantError> {
    if let Some(&byte) = id.iter().find(|b| !allowed(**b)) {
        return Err(TenantError::UnsupportedCharacter {
            id: String::from_utf8_lossy(id).into_owned(),
            byte,
        });
    }
    if id.len() > MAX_TENANT_ID_LENGTH {
        return Err(TenantError::TooLong);
    }
    if id == b"." || id == b".." {
        return Err(TenantError::Unsafe);
    }
    Ok(())
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'!' | b'-' | b'_' | b'.' | b'*' | b'\'' | b'(' | b')')
}

/// The tenant of a request whose `X-Scope-OrgID` is `header`.
///
/// `a|b` names several tenants: each is validated (the first invalid one is the error),
/// then more than one distinct tenant is refused. A `:suffix` (dskit's subtenant) is cut
/// off each part before it is validated.
pub fn resolve(header: Option<&[u8]>, multitenancy: bool) -> Result<String, TenantError> {
    if !multitenancy {
        return Ok(DEFAULT_TENANT.to_string());
    }
    let header = header
        .filter(|h| !h.is_empty())
        .ok_or(TenantError::NoOrgId)?;
    let mut tenant: Option<&[u8]> = None;
    let mut several = false;
    for part in header.split(|b| *b == b'|') {
        let id = part.split(|b| *b == b':').next().unwrap_or(part);
        validate(id)?;
        match tenant {
            None => tenant = Some(id),
            Some(t) if t != id => several = true,
            Some(_) => {}
        }
    }
    if several {
        return Err(TenantError::Multiple);
    }
    // Every byte was checked to be ASCII above.
    Ok(String::from_utf8_lossy(tenant.unwrap_or_default()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dskit_rules_and_messages() {
        assert_eq!(resolve(None, false).as_deref(), Ok("anonymous"));
        assert_eq!(resolve(Some(b"x y"), false).as_deref(), Ok("anonymous"));
        assert_eq!(resolve(None, true), Err(TenantError::NoOrgId));
        assert_eq!(resolve(Some(b""), true), Err(TenantError::NoOrgId));
        assert_eq!(resolve(Some(b"team-a"), true).as_deref(), Ok("team-a"));
        assert_eq!(
            resolve(Some(b"A.z_0!*'()-"), true).as_deref(),
            Ok("A.z_0!*'()-")
        );
        assert_eq!(resolve(Some(b"team-a:sub"), true).as_deref(), Ok("team-a"));
        assert_eq!(resolve(Some(b"a|a"), true).as_deref(), Ok("a"));
        let msg = |h: &[u8]| resolve(Some(h), true).unwrap_err().to_string();
        assert_eq!(msg(b"a|b"), "multiple org IDs present");
        assert_eq!(
            msg(b"a b"),
            "tenant ID 'a b' contains unsupported character ' '"
        );
        assert_eq!(
            msg(b"a/b"),
            "tenant ID 'a/b' contains unsupported character '/'"
        );
        // A UTF-8 'é' (c3 a9): Go's %c of the byte 0xc3 is 'Ã'.
        assert_eq!(
            msg("café".as_bytes()),
            "tenant ID 'café' contains unsupported character 'Ã'"
        );
        assert_eq!(
            msg(&[b'a'; 151]),
            "tenant ID is too long: max 150 characters"
        );
        assert!(resolve(Some(&[b'a'; 150]), true).is_ok());
        // The character check comes first, even for an over-long ID.
        let mut long = vec![b'a'; 200];
        long[199] = b'$';
        assert!(msg(&long).contains("unsupported character '$'"));
        assert_eq!(msg(b"."), "tenant ID is '.' or '..'");
        assert_eq!(msg(b".."), "tenant ID is '.' or '..'");
        assert!(resolve(Some(b"..."), true).is_ok());
        assert_eq!(
            msg(b"a|b/c"),
            "tenant ID 'b/c' contains unsupported character '/'"
        );
    }
}
