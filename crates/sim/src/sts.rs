//! STS over the awsQuery protocol: `GetCallerIdentity`.

use crate::Sim;
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

pub fn handle(sim: &Sim, action: &str, request_id: &str) -> WireResponse {
    if action != "GetCallerIdentity" {
        return error(
            400,
            "Sender",
            "InvalidAction",
            &format!("Could not find operation {action} for version 2011-06-15"),
            request_id,
        );
    }
    let account = &sim.config.account_id;
    // The Rust SDK requires the result element to be the first child.
    WireResponse::xml(
        200,
        format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
<Arn>arn:aws:iam::{account}:user/patchtrail-sim</Arn><UserId>AIDAPATCHTRAILSIMUSER</UserId><Account>{account}</Account>\
</GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        ),
    )
}
