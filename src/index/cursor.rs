//! The `before` cursor of the list route: a position in the list, as opaque text.
//!
//! A position is the log's last `_id` and its key, the same on every replica, so a cursor
//! issued by one replica pages correctly on another. It carries a checksum, so text the service
//! did not issue (a typo, a truncated copy, a guess) is refused with 400 instead of silently
//! paging from somewhere. It is not a secret: it names a log the holder was shown, and every
//! page is filtered by the access check anyway, so a forged cursor reveals nothing.

use bson::oid::ObjectId;

use crate::log::LogKey;

/// Where a log sits in the list: its last `_id`, then its key (a total order).
pub(crate) type Position = (ObjectId, LogKey);

/// Mixed into the checksum so that a cursor of another format or version never validates.
const DOMAIN: &[u8] = b"sse-logs/cursor/1";

pub(crate) fn encode(position: &Position) -> String {
    let (oid, key) = position;
    let mut bytes = oid.bytes().to_vec();
    let type_len = u32::try_from(key.log_type.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&type_len.to_be_bytes());
    bytes.extend_from_slice(key.log_type.as_bytes());
    bytes.extend_from_slice(key.id.as_bytes());
    bytes.extend_from_slice(&checksum(&bytes).to_be_bytes());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The position a cursor names, or `None` when the service did not issue it.
pub(crate) fn decode(text: &str) -> Option<Position> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if checksum(body).to_be_bytes() != sum {
        return None;
    }
    let oid = ObjectId::from_bytes(body.get(..12)?.try_into().ok()?);
    let type_len = usize::try_from(u32::from_be_bytes(body.get(12..16)?.try_into().ok()?)).ok()?;
    let rest = body.get(16..)?;
    let log_type = std::str::from_utf8(rest.get(..type_len)?).ok()?;
    let id = std::str::from_utf8(rest.get(type_len..)?).ok()?;
    Some((oid, LogKey::new(log_type, id)))
}

/// FNV-1a, 64 bits: stable across builds and platforms, unlike std's hasher.
fn checksum(bytes: &[u8]) -> u64 {
    DOMAIN
        .iter()
        .chain(bytes)
        .fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_its_position_again() {
        let position = (ObjectId::new(), LogKey::new("ci job", "7:a/ü"));
        assert_eq!(decode(&encode(&position)), Some(position));
    }

    #[test]
    fn text_the_service_did_not_issue_is_refused() {
        let cursor = encode(&(ObjectId::new(), LogKey::new("deploy", "42")));
        let mut tampered = cursor.clone().into_bytes();
        tampered[30] = if tampered[30] == b'0' { b'1' } else { b'0' };
        for bad in [
            "",
            "abc",
            "zz",
            "00",
            &cursor[..cursor.len() - 2],
            &String::from_utf8(tampered).unwrap(),
            "0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
