//! The meaning of stored values, as `docs/semantics.md` writes it: state classes (§2), severity
//! levels, critical and security (§3), versions of Linux packages (§6.5) and the names of
//! changes between two snapshots (§6.2). The reports call these (as SQL functions), so each rule
//! lives in exactly one place in the product; the oracle in `tests/oracle` implements the same
//! page independently.

/// The class of a patch state (§2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateClass {
    Installed,
    PendingReboot,
    Rejected,
    Missing,
    Failed,
    NotApplicable,
    AvailableSecurityUpdate,
    Other,
}

impl StateClass {
    pub const ALL: [StateClass; 8] = [
        StateClass::Installed,
        StateClass::PendingReboot,
        StateClass::Rejected,
        StateClass::Missing,
        StateClass::Failed,
        StateClass::NotApplicable,
        StateClass::AvailableSecurityUpdate,
        StateClass::Other,
    ];

    /// §2.1, matched on the stored CamelCase spelling exactly (§2.2).
    pub fn of(state: &str) -> StateClass {
        match state {
            "Installed" | "InstalledOther" => StateClass::Installed,
            "InstalledPendingReboot" => StateClass::PendingReboot,
            "InstalledRejected" => StateClass::Rejected,
            "Missing" => StateClass::Missing,
            "Failed" => StateClass::Failed,
            "NotApplicable" => StateClass::NotApplicable,
            "AvailableSecurityUpdate" => StateClass::AvailableSecurityUpdate,
            _ => StateClass::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StateClass::Installed => "installed",
            StateClass::PendingReboot => "pending_reboot",
            StateClass::Rejected => "rejected",
            StateClass::Missing => "missing",
            StateClass::Failed => "failed",
            StateClass::NotApplicable => "not_applicable",
            StateClass::AvailableSecurityUpdate => "available_security_update",
            StateClass::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<StateClass> {
        StateClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether a patch in this class makes its instance non-compliant (§2.1, last column).
    pub fn makes_noncompliant(self) -> bool {
        matches!(
            self,
            StateClass::PendingReboot
                | StateClass::Rejected
                | StateClass::Missing
                | StateClass::Failed
                | StateClass::AvailableSecurityUpdate
        )
    }
}

/// §3.1: the severity as one of critical, high, medium, low, unspecified.
pub fn severity_level(severity: &str) -> &'static str {
    // Compared in place, without regard to ASCII case: reports call this for every patch row.
    const LEVELS: [(&str, &str); 6] = [
        ("critical", "critical"),
        ("important", "high"),
        ("high", "high"),
        ("moderate", "medium"),
        ("medium", "medium"),
        ("low", "low"),
    ];
    let s = severity.trim();
    LEVELS
        .iter()
        .find(|(name, _)| s.eq_ignore_ascii_case(name))
        .map_or("unspecified", |(_, level)| level)
}

fn classification_is(classification: &str, names: &[&str]) -> bool {
    let c = classification.trim();
    names.iter().any(|n| c.eq_ignore_ascii_case(n))
}

/// §3.3: severity level critical, or classification CriticalUpdates.
pub fn is_critical(severity: &str, classification: &str) -> bool {
    severity_level(severity) == "critical"
        || classification_is(classification, &["CriticalUpdates"])
}

/// §3.3: classification Security or SecurityUpdates.
pub fn is_security(classification: &str) -> bool {
    classification_is(classification, &["Security", "SecurityUpdates"])
}

/// §8.4: the CVE id `text` is, trimmed of spaces and upper-cased, when it has the shape MITRE
/// gives every id (`CVE-`, a four-digit year, `-`, four or more digits; CVE Numbering
/// Authorities' "CVE ID Syntax"); None for anything else (`=1+1`, `A, B`, an ALAS id).
pub fn cve_id(text: &str) -> Option<String> {
    let id = text.trim_matches(' ').to_ascii_uppercase();
    let rest = id.strip_prefix("CVE-")?;
    let (year, number) = rest.split_once('-')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (year.len() == 4 && digits(year) && number.len() >= 4 && digits(number)).then_some(id)
}

/// §6.5: the part of a Linux title after `KBId:` (`0:5.10.228-219.884.amzn2`), if the title
/// starts with it (`""` when nothing follows the colon: a known, empty version).
pub fn patch_version<'a>(kb_id: &str, title: &'a str) -> Option<&'a str> {
    if kb_id.is_empty() {
        return None;
    }
    title.strip_prefix(kb_id)?.strip_prefix(':')
}

/// §6.2: the name of a change from class `from` to class `to` (`None` = the patch is not reported),
/// or `None` when the class did not change.
pub fn change_name(from: Option<StateClass>, to: Option<StateClass>) -> Option<&'static str> {
    use StateClass::*;
    if from == to {
        return None;
    }
    Some(match (from, to) {
        (Some(Installed | PendingReboot | Rejected), Some(Missing)) => "regressed",
        (_, Some(Missing)) => "newly_missing",
        (_, Some(Failed)) => "newly_failed",
        (Some(PendingReboot), Some(Installed)) => "reboot_completed",
        (_, Some(Installed)) => "newly_installed",
        (_, Some(PendingReboot)) => "installed_pending_reboot",
        (_, Some(Rejected)) => "newly_rejected",
        (_, Some(NotApplicable)) => "became_not_applicable",
        (_, Some(AvailableSecurityUpdate)) => "security_update_available",
        (_, Some(Other)) => "state_changed",
        (_, None) => "no_longer_reported",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cve_ids_have_mitre_shape() {
        assert_eq!(
            cve_id(" cve-2021-44228 ").as_deref(),
            Some("CVE-2021-44228")
        );
        assert_eq!(
            cve_id("CVE-2024-1234567").as_deref(),
            Some("CVE-2024-1234567")
        );
        for bad in [
            "=1+1",
            "CVE-2021-123",
            "CVE-21-44228",
            "A, B",
            "ALAS-2024-1234",
            "CVE-2021-4422８",
            "",
        ] {
            assert_eq!(cve_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_state_has_one_class() {
        assert_eq!(StateClass::of("InstalledOther"), StateClass::Installed);
        assert_eq!(
            StateClass::of("InstalledPendingReboot"),
            StateClass::PendingReboot
        );
        assert_eq!(
            StateClass::of("INSTALLED"),
            StateClass::Other,
            "stored values are CamelCase"
        );
        assert!(!StateClass::NotApplicable.makes_noncompliant());
        assert!(StateClass::PendingReboot.makes_noncompliant());
        for c in StateClass::ALL {
            assert_eq!(StateClass::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn severities_group_across_vendors() {
        assert_eq!(severity_level("Important"), "high");
        assert_eq!(severity_level("important"), "high");
        assert_eq!(severity_level(" CRITICAL "), "critical");
        assert_eq!(severity_level("required"), "unspecified");
        assert_eq!(severity_level(""), "unspecified");
        assert!(is_critical("", "criticalupdates"));
        assert!(!is_security(""));
    }

    #[test]
    fn linux_titles_carry_versions() {
        assert_eq!(
            patch_version("kernel.x86_64", "kernel.x86_64:0:5.10.1-1.amzn2"),
            Some("0:5.10.1-1.amzn2")
        );
        assert_eq!(
            patch_version("KB5034441", "2024-01 Security Update (KB5034441)"),
            None
        );
        assert_eq!(patch_version("", ":x"), None);
        assert_eq!(
            patch_version("pkg.x86_64", "pkg.x86_64:"),
            Some(""),
            "§6.5: a known, empty version"
        );
        assert_eq!(
            patch_version("tzdata.amd64", "tzdata.amd64:2024a-0ubuntu0.20.04"),
            Some("2024a-0ubuntu0.20.04")
        );
    }

    #[test]
    fn apt_versions_keep_their_own_epoch() {
        // apt titles are `name.arch:version` and apt's version keeps the package's Debian epoch:
        // the version is everything after `KBId:`, not what follows the last (or second) colon.
        assert_eq!(
            patch_version("libssl1.1.amd64", "libssl1.1.amd64:1:1.1.1f-1ubuntu2.22"),
            Some("1:1.1.1f-1ubuntu2.22")
        );
        assert_eq!(
            patch_version("vim.amd64", "vim.amd64:2:8.2.3995-1ubuntu2.15"),
            Some("2:8.2.3995-1ubuntu2.15")
        );
        // A KBId that is only a prefix of the title's package is not that package.
        assert_eq!(
            patch_version("libssl3", "libssl3-dev.amd64:3.0.2-0ubuntu1.15"),
            None
        );
    }

    #[test]
    fn named_changes() {
        use StateClass::*;
        assert_eq!(
            change_name(Some(PendingReboot), Some(Installed)),
            Some("reboot_completed")
        );
        assert_eq!(
            change_name(Some(Missing), Some(PendingReboot)),
            Some("installed_pending_reboot")
        );
        assert_eq!(
            change_name(Some(Installed), Some(Missing)),
            Some("regressed")
        );
        assert_eq!(change_name(None, Some(Missing)), Some("newly_missing"));
        assert_eq!(change_name(Some(Failed), None), Some("no_longer_reported"));
        assert_eq!(change_name(Some(Missing), Some(Missing)), None);
        // Every pair of distinct classes (and absence) has a name.
        let all: Vec<Option<StateClass>> = std::iter::once(None)
            .chain(StateClass::ALL.map(Some))
            .collect();
        for a in &all {
            for b in &all {
                assert_eq!(change_name(*a, *b).is_some(), a != b);
            }
        }
    }
}
