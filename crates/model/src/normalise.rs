//! One documented spelling for the enum-like values AWS sends.
//!
//! Real SSM sends patch states in CamelCase (`Installed`, `Missing`) while its own model says
//! `INSTALLED`, `MISSING`; both must land in the history as the same value, so every state is
//! normalised to the wire's CamelCase spelling.

/// The tag key that selects instances in the seed workflow (its `DescribeInstances` filter), and
/// patchtrail's default.
pub const SEED_TAG_KEY: &str = "CheckPatch";

/// The classifications the seed workflow keeps (its `PatchesFilters`), and patchtrail's default.
pub const SEED_CLASSIFICATIONS: [&str; 3] = ["Security", "CriticalUpdates", "SecurityUpdates"];

/// Classifications SSM Patch Manager reports across its operating systems.
pub const KNOWN_CLASSIFICATIONS: [&str; 15] = [
    // Windows
    "CriticalUpdates",
    "DefinitionUpdates",
    "Drivers",
    "FeaturePacks",
    "SecurityUpdates",
    "ServicePacks",
    "Tools",
    "UpdateRollups",
    "Updates",
    "Upgrades",
    // Amazon Linux, RHEL, SUSE, ...
    "Security",
    "Bugfix",
    "Enhancement",
    "Recommended",
    "Newpackage",
];

/// Whether `name` is a classification SSM reports (exact, case-sensitive like the API filter).
pub fn is_known_classification(name: &str) -> bool {
    KNOWN_CLASSIFICATIONS.contains(&name)
}

/// Maps any spelling of a patch state to the wire's CamelCase (`INSTALLED_OTHER` → `InstalledOther`).
/// Unknown values are kept as sent, so nothing the service says is lost.
pub fn normalise_patch_state(raw: &str) -> String {
    const STATES: [&str; 8] = [
        "Installed",
        "InstalledOther",
        "InstalledPendingReboot",
        "InstalledRejected",
        "Missing",
        "NotApplicable",
        "Failed",
        "AvailableSecurityUpdate",
    ];
    let folded: String = raw
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    STATES
        .iter()
        .find(|s| s.to_ascii_lowercase() == folded)
        .map(|s| s.to_string())
        .unwrap_or_else(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_and_wire_spellings_meet() {
        assert_eq!(
            normalise_patch_state("INSTALLED_PENDING_REBOOT"),
            "InstalledPendingReboot"
        );
        assert_eq!(
            normalise_patch_state("InstalledPendingReboot"),
            "InstalledPendingReboot"
        );
        assert_eq!(normalise_patch_state("MISSING"), "Missing");
        assert_eq!(normalise_patch_state("NotApplicable"), "NotApplicable");
        assert_eq!(normalise_patch_state("SomethingNew"), "SomethingNew");
    }

    #[test]
    fn classifications_are_case_sensitive() {
        assert!(is_known_classification("SecurityUpdates"));
        assert!(!is_known_classification("securityupdates"));
        assert!(
            SEED_CLASSIFICATIONS
                .iter()
                .all(|c| is_known_classification(c))
        );
    }
}
