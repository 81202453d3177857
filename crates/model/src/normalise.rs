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

/// Maps the API model's spelling of a patch state to the wire's CamelCase (`INSTALLED_OTHER` →
/// `InstalledOther`, docs/semantics.md §1.3): the only two spellings AWS sends. Anything else,
/// unknown values and other spellings of known ones included, is kept as sent, so nothing the
/// service says is lost or guessed at.
pub fn normalise_patch_state(raw: &str) -> String {
    const STATES: [(&str, &str); 8] = [
        ("INSTALLED", "Installed"),
        ("INSTALLED_OTHER", "InstalledOther"),
        ("INSTALLED_PENDING_REBOOT", "InstalledPendingReboot"),
        ("INSTALLED_REJECTED", "InstalledRejected"),
        ("MISSING", "Missing"),
        ("NOT_APPLICABLE", "NotApplicable"),
        ("FAILED", "Failed"),
        ("AVAILABLE_SECURITY_UPDATE", "AvailableSecurityUpdate"),
    ];
    STATES
        .iter()
        .find(|(model, _)| *model == raw)
        .map_or(raw, |(_, wire)| wire)
        .to_string()
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
        for unsent in ["missing", "Installed_Other", "installedPendingReboot"] {
            assert_eq!(
                normalise_patch_state(unsent),
                unsent,
                "not a spelling AWS sends"
            );
        }
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
