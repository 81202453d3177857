//! The hand-over between the export that renders ASFF findings (`query`) and the client that
//! sends them (`collect`): one type, so neither copies the other's.

use serde_json::{Value, json};

/// One `securityhub:BatchImportFindings` call's worth: findings of one account and region, sent
/// from that account to that region.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingsBatch {
    pub account_id: String,
    pub region: String,
    pub findings: Vec<Value>,
}

impl FindingsBatch {
    /// The request body: `{"Findings": [...]}`.
    pub fn body(&self) -> Value {
        Self::body_of(&self.findings)
    }

    /// The request body of `findings`, some of a batch's (a retry of those refused).
    pub fn body_of(findings: &[Value]) -> Value {
        json!({ "Findings": findings })
    }
}
