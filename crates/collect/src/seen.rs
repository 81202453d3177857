//! A set of instance ids as large as the fleet (what a discovery walk has returned, what a
//! continued run already holds), kept small: AWS ids (`i-` or `mi-` and lowercase hex digits)
//! are stored as one number each rather than as a `String`, a third of the memory.

use std::collections::HashSet;

#[derive(Debug, Default)]
pub struct IdSet {
    numbers: HashSet<u128>,
    /// Ids of any other shape, as text.
    others: HashSet<String>,
}

impl IdSet {
    /// Records `id`; whether it was not in the set before.
    pub fn insert(&mut self, id: &str) -> bool {
        match as_number(id) {
            Some(n) => self.numbers.insert(n),
            None => self.others.insert(id.to_string()),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        match as_number(id) {
            Some(n) => self.numbers.contains(&n),
            None => self.others.contains(id),
        }
    }

    pub fn len(&self) -> usize {
        self.numbers.len() + self.others.len()
    }
}

impl<'a> FromIterator<&'a str> for IdSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(ids: I) -> Self {
        let mut set = IdSet::default();
        for id in ids {
            set.insert(id);
        }
        set
    }
}

/// `i-`/`mi-` and 1 to 25 lowercase hex digits as one number, exactly: the digits' value in
/// the low 100 bits, their count above it (leading zeros count), then the prefix. Any other
/// shape is `None`.
fn as_number(id: &str) -> Option<u128> {
    let (prefix, digits) = match id.strip_prefix("i-") {
        Some(d) => (1u128, d),
        None => (2u128, id.strip_prefix("mi-")?),
    };
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if digits.is_empty() || digits.len() > 25 || !digits.bytes().all(lower_hex) {
        return None;
    }
    let value = u128::from_str_radix(digits, 16).ok()?;
    Some(value | (digits.len() as u128) << 100 | prefix << 105)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_distinct_id_is_distinct() {
        let ids = [
            "i-0123456789abcdef0",
            "i-123456789abcdef0",
            "i-00000001",
            "i-1",
            "mi-0123456789abcdef0",
            "i-0123456789ABCDEF0",
            "web-1",
            "i-",
            "i-0123456789abcdef0123456789",
        ];
        let mut set = IdSet::default();
        for id in ids {
            assert!(set.insert(id), "{id} is new");
        }
        for id in ids {
            assert!(!set.insert(id), "{id} is known");
            assert!(set.contains(id));
        }
        assert_eq!(set.len(), ids.len());
        assert!(!set.contains("i-0123456789abcdef1"));
        assert!(!set.contains("mi-00000001"));
        assert_eq!(as_number("i-0123456789ABCDEF0"), None, "kept as text");
    }
}
