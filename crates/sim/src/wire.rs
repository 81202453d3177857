//! Pieces shared by the three wire protocols: the response value, pagination tokens, XML escaping.

use crate::hash::{combine, of_str};

/// An HTTP answer in one of the AWS wire formats.
#[derive(Debug, Clone, PartialEq)]
pub struct WireResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// `X-Amzn-ErrorType` for awsJson errors.
    pub error_type: Option<String>,
}

pub const JSON_1_1: &str = "application/x-amz-json-1.1";
pub const XML: &str = "text/xml;charset=UTF-8";

impl WireResponse {
    pub fn json(body: serde_json::Value) -> WireResponse {
        WireResponse {
            status: 200,
            content_type: JSON_1_1,
            body: body.to_string(),
            error_type: None,
        }
    }

    /// awsJson1_1 error: `{"__type": code, "Message": message}` plus the `X-Amzn-ErrorType` header.
    pub fn json_error(status: u16, code: &str, message: &str) -> WireResponse {
        WireResponse {
            status,
            content_type: JSON_1_1,
            body: serde_json::json!({ "__type": code, "Message": message }).to_string(),
            error_type: Some(code.to_string()),
        }
    }

    pub fn xml(status: u16, body: String) -> WireResponse {
        WireResponse {
            status,
            content_type: XML,
            body,
            error_type: None,
        }
    }

    /// The service error code, for statistics.
    pub fn is_error(&self) -> bool {
        self.status >= 400
    }
}

/// Escapes text for an XML element body.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An opaque pagination token: the offset of the next item, bound to the request it continues.
///
/// The binding (a fingerprint of the request without its token) makes a token from another
/// request, or a made-up one, an `InvalidNextToken` rather than a silently wrong page.
pub struct PageToken;

impl PageToken {
    pub fn encode(fingerprint: u64, offset: u64) -> String {
        let check = combine(fingerprint, &[offset]) & 0xffff_ffff;
        format!("{:016x}{:08x}{:08x}", fingerprint, offset, check)
    }

    /// A token that also carries when it was issued (milliseconds on the simulator's clock).
    pub fn encode_stamped(fingerprint: u64, offset: u64, issued_ms: u64) -> String {
        let check = combine(fingerprint, &[offset, issued_ms]) & 0xffff_ffff;
        format!(
            "{:016x}{:08x}{:08x}{:012x}",
            fingerprint,
            offset,
            check,
            issued_ms & 0xffff_ffff_ffff
        )
    }

    /// The offset and issue stamp, if `token` was made by [`PageToken::encode`] (no stamp) or
    /// [`PageToken::encode_stamped`] for this fingerprint.
    pub fn decode(token: &str, fingerprint: u64) -> Option<(u64, Option<u64>)> {
        if !(token.len() == 32 || token.len() == 44) || !token.is_ascii() {
            return None;
        }
        let hex = |range: std::ops::Range<usize>| u64::from_str_radix(&token[range], 16).ok();
        let (fp, offset, check) = (hex(0..16)?, hex(16..24)?, hex(24..32)?);
        let stamp = if token.len() == 44 {
            Some(hex(32..44)?)
        } else {
            None
        };
        let expected = match stamp {
            None => combine(fingerprint, &[offset]),
            Some(s) => combine(fingerprint, &[offset, s]),
        };
        (fp == fingerprint && check == expected & 0xffff_ffff).then_some((offset, stamp))
    }
}

/// A request id in UUID form, derived from the request so that equal requests get equal bytes.
pub fn request_id(seed: u64, parts: &[&str]) -> String {
    let hashes: Vec<u64> = parts.iter().map(|p| of_str(p)).collect();
    let a = combine(seed, &hashes);
    let b = combine(a, &[0x5eed]);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_strangers() {
        let t = PageToken::encode(42, 150);
        assert_eq!(PageToken::decode(&t, 42), Some((150, None)));
        let stamped = PageToken::encode_stamped(42, 150, 9_000);
        assert_eq!(PageToken::decode(&stamped, 42), Some((150, Some(9_000))));
        let mut restamped = stamped.clone();
        restamped.replace_range(32..44, "000000000001");
        assert_eq!(
            PageToken::decode(&restamped, 42),
            None,
            "the stamp is checked too"
        );
        assert_eq!(PageToken::decode(&t, 43), None);
        assert_eq!(PageToken::decode("garbage", 42), None);
        let mut forged = t.clone();
        forged.replace_range(16..24, "00000001");
        assert_eq!(PageToken::decode(&forged, 42), None);
    }

    #[test]
    fn request_ids_are_uuids() {
        let id = request_id(1, &["a", "b"]);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(id, request_id(1, &["a", "b"]));
        assert_ne!(id, request_id(2, &["a", "b"]));
    }
}
