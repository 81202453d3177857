//! The instances a run holds, kept while the run is open (what a continuation skips): one
//! allocation for the whole list rather than one `String` per instance, since a large fleet's
//! list is otherwise the collector's largest structure that grows with the fleet.

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Instance ids in the order added; serialised as a JSON array of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceIds {
    /// Every id followed by a newline (ids are AWS identifiers: no newline in them).
    joined: String,
    len: usize,
}

impl InstanceIds {
    pub fn push(&mut self, id: &str) {
        debug_assert!(
            !id.contains(['\n', '\r']),
            "an id with a line break: {id:?}"
        );
        self.joined.push_str(id);
        self.joined.push('\n');
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.joined.split_terminator('\n')
    }
}

impl Serialize for InstanceIds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for InstanceIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(IdsVisitor)
    }
}

/// Reads the array into one list, an id at a time (no list of `String`s on the way).
struct IdsVisitor;

impl<'de> Visitor<'de> for IdsVisitor {
    type Value = InstanceIds;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of instance ids")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InstanceIds, A::Error> {
        let mut ids = InstanceIds::default();
        while let Some(id) = seq.next_element::<String>()? {
            if id.contains(['\n', '\r']) {
                return Err(serde::de::Error::custom(format!(
                    "instance id {id:?} has a line break"
                )));
            }
            ids.push(&id);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_order_and_read_back_as_a_json_array() {
        let mut ids = InstanceIds::default();
        ids.push("i-0123456789abcdef0");
        ids.push("mi-0123456789abcdef0");
        assert_eq!(ids.len(), 2);
        let json = serde_json::to_string(&ids).expect("json");
        assert_eq!(json, r#"["i-0123456789abcdef0","mi-0123456789abcdef0"]"#);
        let back: InstanceIds = serde_json::from_str(&json).expect("back");
        assert_eq!(back, ids);
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            ["i-0123456789abcdef0", "mi-0123456789abcdef0"]
        );
        assert!(
            serde_json::from_str::<InstanceIds>("[]")
                .expect("empty")
                .is_empty()
        );
        assert!(serde_json::from_str::<InstanceIds>(r#"["i-1\ni-2"]"#).is_err());
    }
}
