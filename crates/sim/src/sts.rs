//! STS over the awsQuery protocol: `GetCallerIdentity` (`AssumeRole` is the organization's, in
//! `org.rs`).

use crate::org::Caller;
use crate::wire::{WireResponse, xml_escape};

pub fn error(status: u16, kind: &str, code: &str, message: &str, request_id: &str) -> WireResponse {
    WireResponse::xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            xml_escape(code),
            xml_escape(message)
        ),
    )
}

pub fn handle(caller: &Caller, action: &str, request_id: &str) -> WireResponse {
    if action != "GetCallerIdentity" {
        return error(
            400,
            "Sender",
            "InvalidAction",
            &format!("Could not find operation {action} for version 2011-06-15"),
            request_id,
        );
    }
    let account = caller.account();
    let arn = xml_escape(&caller.arn());
    let user_id = match caller {
        Caller::Management { .. } => "AIDAPATCHTRAILSIMUSER".to_string(),
        Caller::Assumed(s) => xml_escape(&s.assumed_role_id()),
    };
    // The Rust SDK requires the result element to be the first child.
    WireResponse::xml(
        200,
        format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
<Arn>{arn}</Arn><UserId>{user_id}</UserId><Account>{account}</Account>\
</GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ),
    )
}
