//! A typo in `--region` otherwise surfaces as a DNS failure after minutes of retries; the list
//! of commercial, GovCloud and China regions catches it at once.

use crate::CollectError;

const REGIONS: [&str; 39] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eusc-de-east-1",
    "ap-southeast-6",
];

/// Accepts known regions, and any region when an endpoint override is configured (a private or
/// local endpoint decides for itself).
pub fn check_region(region: &str, endpoint_overridden: bool) -> Result<(), CollectError> {
    if endpoint_overridden || REGIONS.contains(&region) {
        Ok(())
    } else {
        Err(CollectError::UnknownRegion(region.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        assert!(check_region("ap-northeast-1", false).is_ok());
        assert!(check_region("us-east-99", false).is_err());
        assert!(check_region("us-east-99", true).is_ok());
    }
}
