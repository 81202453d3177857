//! Which AWS partition a region belongs to, and its DNS suffix: the ARNs the exports write and
//! the endpoints the collector calls both follow from it, so the rule stands once.

/// The partition a region belongs to (AWS's partitions: `cn-` China, `us-gov-` GovCloud,
/// `us-iso` and `us-isob` the isolated regions; every other region is in `aws`).
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

/// The DNS suffix of a partition's service endpoints (`<service>.<region>.<suffix>`).
pub fn dns_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        "aws-iso" => "c2s.ic.gov",
        "aws-iso-b" => "sc2s.sgov.gov",
        _ => "amazonaws.com",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_the_region_names() {
        assert_eq!(partition_of_region("ap-northeast-1"), "aws");
        assert_eq!(partition_of_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_of_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of_region("us-iso-east-1"), "aws-iso");
        assert_eq!(partition_of_region("us-isob-east-1"), "aws-iso-b");
        assert_eq!(
            dns_suffix(partition_of_region("cn-north-1")),
            "amazonaws.com.cn"
        );
        assert_eq!(
            dns_suffix(partition_of_region("us-gov-west-1")),
            "amazonaws.com"
        );
        assert_eq!(
            dns_suffix(partition_of_region("us-isob-east-1")),
            "sc2s.sgov.gov"
        );
    }
}
