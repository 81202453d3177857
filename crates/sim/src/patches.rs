//! Patch catalogs and the patch state of an instance at a simulated date.
//!
//! Each operating system releases a few patches a week from 2023-01-02 on; the patch baseline
//! approves them 7 days later, and only approved patches are reported. An instance lists the
//! patches of its last `window_weeks` weeks (older ones count as superseded). Each (instance,
//! patch) pair has a fate drawn from the seed: not applicable, installed some days after approval
//! (some via a pending reboot, some outside the baseline), failed, or never installed. Diligent
//! instances (most) install within days; the others lag, fail and skip. The state reported is
//! the state at the instance's last scan, so stopped instances and lost agents keep old answers.
//! Facts are cheap numbers; strings are rendered only for the page being answered.
//!
//! Shapes follow what real SSM sends, not only its model (docs: the `DescribeInstancePatches`
//! API reference and the aws-cli example `describe-instance-patches.rst`; the Patch Manager
//! user guide, "Understanding patch compliance state values"; and the code Patch Manager runs
//! on Linux nodes, AWS's `patch-baseline-operations` package that `AWS-RunPatchBaseline`
//! downloads, read in the public copy github.com/tekumara/aws-ssm-patch-manager, commit
//! fd11be04, cited below as `pbo/<path>`):
//! - On Linux a "patch" is a package: `KBId` is `name.arch` (`kernel.x86_64`) and `Title` is
//!   `name.arch:epoch:version-release` (`kernel.x86_64:0:5.10.228-219.884.amzn2`). Ubuntu's
//!   (apt) `Title` is `name.arch:version` with apt's version, which carries the package's own
//!   Debian epoch when it has one (`openssh-server.amd64:1:8.9p1-3ubuntu0.106`); see
//!   [`Patch::kb_id`] and [`Patch::title`]. Each package is listed once, at its newest approved
//!   version, so the same `KBId` moves to a new version (and back to `Missing`) as updates ship.
//!   Whether a package applies at all is a property of the instance and package, not of a release.
//! - Windows instances whose baseline reports unapproved security updates list them as
//!   `AvailableSecurityUpdate` (the baseline option `AvailableSecurityUpdatesComplianceStatus`).
//! - Linux advisories that are not security fixes carry an empty `Severity` on DNF systems
//!   (Amazon Linux 2023, RHEL 9) and the literal `None` on YUM ones (Amazon Linux 2); Ubuntu's
//!   non-security updates carry an empty `Classification` (see [`Patch::released_in`]).
//! - Some Windows `NotApplicable` and `InstalledOther` rows come with an empty `Title`,
//!   `Classification` and `Severity` (see [`InstancePatch::blank`]).
//! - `InstalledTime` of a patch that is not installed is `0` on Linux and `-62135596800`
//!   (0001-01-01) on Windows, both observed on the wire (boto/boto3#2069); `0` on the Windows
//!   rows without metadata, as issue turbot/steampipe-mod-aws-compliance#759 shows one.

use crate::fleet::{Os, SsmProfile, day};
use crate::hash::{below, combine, unit};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};

/// Patch states, rendered in the wire's CamelCase or the model's UPPER_SNAKE spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchState {
    Installed,
    InstalledOther,
    InstalledPendingReboot,
    InstalledRejected,
    Missing,
    NotApplicable,
    Failed,
    AvailableSecurityUpdate,
}

impl PatchState {
    pub fn wire(self, model_spelling: bool) -> &'static str {
        match (self, model_spelling) {
            (PatchState::Installed, false) => "Installed",
            (PatchState::InstalledOther, false) => "InstalledOther",
            (PatchState::InstalledPendingReboot, false) => "InstalledPendingReboot",
            (PatchState::InstalledRejected, false) => "InstalledRejected",
            (PatchState::Missing, false) => "Missing",
            (PatchState::NotApplicable, false) => "NotApplicable",
            (PatchState::Failed, false) => "Failed",
            (PatchState::AvailableSecurityUpdate, false) => "AvailableSecurityUpdate",
            (PatchState::Installed, true) => "INSTALLED",
            (PatchState::InstalledOther, true) => "INSTALLED_OTHER",
            (PatchState::InstalledPendingReboot, true) => "INSTALLED_PENDING_REBOOT",
            (PatchState::InstalledRejected, true) => "INSTALLED_REJECTED",
            (PatchState::Missing, true) => "MISSING",
            (PatchState::NotApplicable, true) => "NOT_APPLICABLE",
            (PatchState::Failed, true) => "FAILED",
            (PatchState::AvailableSecurityUpdate, true) => "AVAILABLE_SECURITY_UPDATE",
        }
    }

    /// Whether a `State` filter value names this state (either spelling).
    pub fn matches(self, value: &str) -> bool {
        value == self.wire(false) || value == self.wire(true)
    }
}

/// First day of the catalogs (a Monday).
pub fn catalog_epoch() -> NaiveDate {
    day(2023, 1, 2)
}

/// One released patch of one OS catalog.
#[derive(Debug, Clone, Copy)]
pub struct Patch {
    pub os: Os,
    pub week: i64,
    pub slot: u64,
    pub classification: &'static str,
    pub severity: &'static str,
    pub released: DateTime<Utc>,
    /// On Linux, the index of the package this release updates (in `packages(os)`).
    package: usize,
    hash: u64,
}

/// Linux packages that receive updates; Windows updates are not packages.
fn packages(os: Os) -> &'static [&'static str] {
    match os {
        Os::Ubuntu2204 => &[
            "linux-image-generic",
            "libssl3",
            "libc6",
            "curl",
            "sudo",
            "openssh-server",
            "python3.10",
            "systemd",
            "bind9-libs",
            "libnss3",
            "libxml2",
            "git",
            "vim",
            "tzdata",
        ],
        _ => &[
            "kernel",
            "kernel-tools",
            "openssl-libs",
            "glibc",
            "curl",
            "sudo",
            "openssh-server",
            "python3",
            "systemd",
            "bind-libs",
            "nss",
            "libxml2",
            "git",
            "vim-minimal",
            "tzdata",
            "ca-certificates",
        ],
    }
}

/// A patch as one instance reports it at its last scan.
#[derive(Debug, Clone, Copy)]
pub struct InstancePatch {
    pub patch: Patch,
    pub state: PatchState,
    pub installed_at: Option<DateTime<Utc>>,
    /// Reported without its metadata: empty `Title`, `Classification` and `Severity`, only the
    /// `KBId` (Windows `NotApplicable` and `InstalledOther` rows). Real shapes: the aws-cli
    /// example awscli/examples/ssm/describe-instance-patches.rst lists `KB4481031`
    /// `InstalledOther` with `"Title": ""`, `"Classification": ""`, `"Severity": ""`, and
    /// issue turbot/steampipe-mod-aws-compliance#759 quotes a real `KB2305420` `NotApplicable`
    /// row the same way (with `InstalledTime` 0.0), "thousands" of them on its Windows fleet; the
    /// API reference of `ComplianceItem` says the status of "Windows patches that aren't
    /// applicable" is an empty string. How often is not published: a quarter of such rows here.
    pub blank: bool,
}

impl InstancePatch {
    /// `Title` as reported (empty for a row without metadata).
    pub fn title(&self) -> String {
        if self.blank {
            String::new()
        } else {
            self.patch.title()
        }
    }

    /// `Classification` as reported.
    pub fn classification(&self) -> &'static str {
        if self.blank {
            ""
        } else {
            self.patch.classification
        }
    }

    /// `Severity` as reported.
    pub fn severity(&self) -> &'static str {
        if self.blank { "" } else { self.patch.severity }
    }
}

/// Share of Windows `NotApplicable` and `InstalledOther` rows reported without metadata.
const BLANK_WINDOWS_ROWS: f64 = 0.25;

fn at(date: NaiveDate, minutes: i64) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN)) + Duration::minutes(minutes)
}

fn weighted(h: u64, table: &[(&'static str, u64)]) -> &'static str {
    let total: u64 = table.iter().map(|(_, w)| w).sum();
    let mut x = below(h, total);
    for (name, w) in table {
        if x < *w {
            return name;
        }
        x -= w;
    }
    table[0].0
}

impl Patch {
    /// The Windows update a KB number names (`KB5000000` + 2 × its sequence, +1 on Windows
    /// Server 2022), if it was released by the end of `date`.
    pub fn windows_by_kb(seed: u64, kb: &str, date: NaiveDate) -> Option<Patch> {
        let n: i64 = kb.strip_prefix("KB")?.parse().ok()?;
        let n = n.checked_sub(5_000_000).filter(|n| *n >= 0)?;
        let os = if n % 2 == 0 {
            Os::WindowsServer2019
        } else {
            Os::WindowsServer2022
        };
        let seq = n / 2;
        let (week, slot) = (seq / 8, (seq % 8) as u64);
        Patch::released_in(seed, os, week)
            .find(|p| p.slot == slot)
            .filter(|p| p.released.date_naive() <= date)
    }

    /// Every release of `os` by the end of `date`, oldest first.
    pub fn released_by(seed: u64, os: Os, date: NaiveDate) -> impl Iterator<Item = Patch> {
        let weeks = (date - catalog_epoch()).num_days().div_euclid(7);
        (0..=weeks)
            .flat_map(move |week| Patch::released_in(seed, os, week))
            .filter(move |p| p.released.date_naive() <= date)
    }

    /// The patches `os` released in catalog week `week`.
    pub fn released_in(seed: u64, os: Os, week: i64) -> impl Iterator<Item = Patch> {
        let count = 3 + below(combine(seed, &[0xca7, os as u64, week as u64]), 5);
        (0..count).map(move |slot| Patch::new(seed, os, week, slot))
    }

    fn new(seed: u64, os: Os, week: i64, slot: u64) -> Patch {
        let hash = combine(seed, &[0x9a7c, os as u64, week as u64, slot]);
        let h = |salt: u64| combine(hash, &[salt]);
        let (classification, severity) = if os.is_windows() {
            let c = weighted(
                h(1),
                &[
                    ("SecurityUpdates", 50),
                    ("CriticalUpdates", 15),
                    ("Updates", 15),
                    ("DefinitionUpdates", 12),
                    ("UpdateRollups", 8),
                ],
            );
            let s = if c == "SecurityUpdates" || c == "CriticalUpdates" {
                weighted(
                    h(2),
                    &[
                        ("Critical", 30),
                        ("Important", 50),
                        ("Moderate", 15),
                        ("Low", 5),
                    ],
                )
            } else {
                "Unspecified"
            };
            (c, s)
        } else if os == Os::Ubuntu2204 {
            // apt has no advisory types: an update is `Security` when its candidate version
            // comes from a security pocket, else the classification is empty
            // (pbo/patch_common/package_matcher.py, `get_package_classification`).
            let c = weighted(h(1), &[("Security", 70), ("", 30)]);
            (
                c,
                weighted(
                    h(2),
                    &[
                        ("required", 10),
                        ("important", 30),
                        ("standard", 40),
                        ("optional", 20),
                    ],
                ),
            )
        } else {
            let c = weighted(
                h(1),
                &[("Security", 65), ("Bugfix", 25), ("Enhancement", 10)],
            );
            let s = if c == "Security" {
                weighted(
                    h(2),
                    &[
                        ("Critical", 10),
                        ("Important", 35),
                        ("Medium", 40),
                        ("Low", 15),
                    ],
                )
            } else if os == Os::AmazonLinux2 {
                // Amazon Linux 2 is patched through YUM, which reads a bugfix or enhancement
                // notice without a severity as the string "None" ("this is can often be seen in
                // bugfix update notice ... sometimes the severity value appears and show as
                // 'None'", pbo/patch_yum/yum_update_notice.py, `get_severity_update_notice`);
                // YUM serves Amazon Linux 2 (user guide, "About the AWS-RunPatchBaseline SSM
                // document", awsdocs/aws-systems-manager-user-guide
                // doc_source/patch-manager-about-aws-runpatchbaseline.md).
                "None"
            } else {
                // DNF (Amazon Linux 2023, RHEL 9) takes the notice's `<severity>` text, "" when
                // it has none (pbo/patch_dnf/updateinfo_xml_parser.py).
                ""
            };
            (c, s)
        };
        let week_start = catalog_epoch() + Duration::weeks(week);
        let released = if os.is_windows() {
            at(week_start + Duration::days(1), 18 * 60)
        } else {
            at(
                week_start + Duration::days((slot % 5) as i64),
                10 * 60 + below(h(3), 300) as i64,
            )
        };
        let package = if os.is_windows() {
            0
        } else {
            below(h(4), packages(os).len() as u64) as usize
        };
        Patch {
            os,
            week,
            slot,
            classification,
            severity,
            released,
            package,
            hash,
        }
    }

    /// What decides whether the patch applies to an instance: the release itself on Windows,
    /// the package on Linux (an instance either has the package or not, whatever its version).
    fn applicability_key(&self) -> u64 {
        if self.os.is_windows() {
            self.hash
        } else {
            combine(0x9ac4, &[self.os as u64, self.package as u64])
        }
    }

    pub(crate) fn package_name(&self) -> &'static str {
        packages(self.os)[self.package]
    }

    fn seq(&self) -> i64 {
        self.week * 8 + self.slot as i64
    }

    pub fn kb_id(&self) -> String {
        match self.os {
            Os::WindowsServer2019 => format!("KB{}", 5_000_000 + self.seq() * 2),
            Os::WindowsServer2022 => format!("KB{}", 5_000_001 + self.seq() * 2),
            // `name.arch` (pbo/patch_common/package_matcher.py, `get_package_id`: format 'na'
            // for debian, raspbian and ubuntu).
            Os::Ubuntu2204 => format!("{}.amd64", self.package_name()),
            Os::AmazonLinux2 | Os::AmazonLinux2023 | Os::Rhel9 => {
                format!("{}.x86_64", self.package_name())
            }
        }
    }

    /// `epoch:version-release` of a Linux package release, growing with every release.
    pub(crate) fn linux_version(&self) -> String {
        let n = 100 + self.seq();
        match self.os {
            Os::AmazonLinux2 => format!("0:5.10.{n}-{}.amzn2", 1 + self.slot),
            Os::AmazonLinux2023 => format!("0:6.1.{n}-{}.amzn2023", 1 + self.slot),
            Os::Rhel9 => format!("0:5.14.0-{n}.{}.el9_4", 1 + self.slot),
            _ => self.ubuntu_version(),
        }
    }

    /// The apt version of an Ubuntu 22.04 package release, growing with every release, epoch
    /// included where the package has one: apt keeps a Debian epoch in the version string, and
    /// the title takes that string whole (`nav` = `name.arch:version`,
    /// pbo/patch_common/package_matcher.py `get_package_title`; the version is python-apt's
    /// `Version.version`, pbo/patch_apt/package_version.py). The epochs are the packages' real
    /// ones, which Ubuntu keeps from Debian (`apt-cache policy` on Debian 12 gives
    /// openssh-server 1:9.2p1-2+deb12u10, git 1:2.39.5-0+deb12u3, vim 2:9.0.1378-2+deb12u2,
    /// libnss3 2:3.87.1-1+deb12u4, bind9-libs 1:9.18.49-1~deb12u3, and none for tzdata,
    /// libssl3 or curl), so about a third of Ubuntu's patches carry one.
    fn ubuntu_version(&self) -> String {
        let n = 100 + self.seq();
        let s = 1 + self.slot;
        match self.package_name() {
            "linux-image-generic" => format!("5.15.0.{n}.{}", n - 3),
            "libssl3" => format!("3.0.2-0ubuntu1.{n}"),
            "libc6" => format!("2.35-0ubuntu3.{n}"),
            "curl" => format!("7.81.0-1ubuntu1.{n}"),
            "sudo" => format!("1.9.9-1ubuntu2.{n}"),
            "openssh-server" => format!("1:8.9p1-3ubuntu0.{n}"),
            "python3.10" => format!("3.10.12-1~22.04.{n}"),
            "systemd" => format!("249.11-0ubuntu3.{n}"),
            "bind9-libs" => format!("1:9.18.{n}-0ubuntu0.22.04.{s}"),
            "libnss3" => format!("2:3.{n}-0ubuntu0.22.04.{s}"),
            "libxml2" => format!("2.9.13+dfsg-1ubuntu0.{n}"),
            "git" => format!("1:2.34.1-1ubuntu1.{n}"),
            "vim" => format!("2:8.2.3995-1ubuntu2.{n}"),
            // tzdata: `2024a-0ubuntu0.22.04`, then `.1`, ... (a release a fortnight here).
            _ => {
                let year = 2023 + self.week.div_euclid(52);
                let letter = char::from(b'a' + (self.week.rem_euclid(52) / 2) as u8);
                format!("{year}{letter}-0ubuntu0.22.04.{s}")
            }
        }
    }

    pub fn title(&self) -> String {
        let kb = self.kb_id();
        let month = self.released.format("%Y-%m");
        let server = match self.os {
            Os::WindowsServer2019 => "Windows Server 2019",
            _ => "Microsoft server operating system version 21H2",
        };
        match self.os {
            Os::WindowsServer2019 | Os::WindowsServer2022 => match self.classification {
                "SecurityUpdates" => {
                    format!("{month} Cumulative Update for {server} for x64-based Systems ({kb})")
                }
                "CriticalUpdates" => format!(
                    "{month} Servicing Stack Update for {server} for x64-based Systems ({kb})"
                ),
                "DefinitionUpdates" => format!(
                    "Security Intelligence Update for Microsoft Defender Antivirus - {kb} (Version 1.{}.{}.0)",
                    400 + self.week,
                    self.slot
                ),
                "UpdateRollups" => format!(
                    "{month} Cumulative Update for .NET Framework 3.5, 4.8 and 4.8.1 for {server} ({kb})"
                ),
                _ => format!("{month} Update for {server} for x64-based Systems ({kb})"),
            },
            _ => format!("{kb}:{}", self.linux_version()),
        }
    }

    /// CVE ids, for security patches only (the API reference, PatchComplianceData.CVEIds: "reported
    /// only for patches with a status of Missing or Failed"; the caller checks the state), and
    /// never on Ubuntu: the apt code of AWS's Linux patching package (patch-baseline-operations,
    /// `package_matcher.py`, read in the public copy tekumara/aws-ssm-patch-manager) builds no
    /// CVE field, where its yum/dnf code reads the update notices' CVE references.
    pub fn cve_ids(&self) -> Option<String> {
        if self.os == Os::Ubuntu2204
            || !matches!(
                self.classification,
                "Security" | "SecurityUpdates" | "CriticalUpdates"
            )
        {
            return None;
        }
        let n = 1 + below(combine(self.hash, &[5]), 3);
        let year = self.released.year();
        let ids: Vec<String> = (0..n)
            .map(|k| {
                format!(
                    "CVE-{year}-{}",
                    10_000 + below(combine(self.hash, &[6, k]), 40_000)
                )
            })
            .collect();
        Some(ids.join(","))
    }
}

/// How one patch goes on one instance.
enum Fate {
    NotApplicable,
    Never,
    FailsAfter(i64),
    Installs {
        after_days: i64,
        state: PatchState,
        reboot_days: i64,
    },
}

/// Days from release to approval by the patch baseline (`ApproveAfterDays`).
pub const APPROVE_AFTER_DAYS: i64 = 7;

fn fate(seed: u64, profile: &SsmProfile, patch: &Patch) -> Fate {
    if unit(combine(
        seed,
        &[profile.id_hash, patch.applicability_key(), 0xa9],
    )) < 0.15
    {
        return Fate::NotApplicable;
    }
    let h = combine(seed, &[profile.id_hash, patch.hash]);
    let u = unit(h);
    let days = |salt: u64| {
        let g = combine(h, &[salt]);
        APPROVE_AFTER_DAYS
            + if profile.diligent {
                below(g, 3) as i64
            } else if unit(g) < 0.85 {
                1 + below(g, 27) as i64
            } else {
                30 + below(g, 60) as i64
            }
    };
    if profile.diligent {
        if u < 0.0035 {
            Fate::FailsAfter(days(1))
        } else {
            Fate::Installs {
                after_days: days(4),
                state: PatchState::Installed,
                reboot_days: 0,
            }
        }
    } else if u < 0.07 {
        Fate::Never
    } else if u < 0.105 {
        Fate::FailsAfter(days(1))
    } else {
        let v = unit(combine(h, &[2]));
        let state = if v < 0.05 {
            PatchState::InstalledOther
        } else if v < 0.06 {
            PatchState::InstalledRejected
        } else {
            PatchState::Installed
        };
        let reboot_days = if unit(combine(h, &[3])) < 0.10 { 3 } else { 0 };
        Fate::Installs {
            after_days: days(4),
            state,
            reboot_days,
        }
    }
}

/// Whether the instance's baseline lists unapproved security updates as
/// `AvailableSecurityUpdate` (Windows only; about half of the Windows fleet).
pub fn reports_available_security_updates(seed: u64, profile: &SsmProfile) -> bool {
    profile.os.is_windows() && unit(combine(seed, &[profile.id_hash, 0xa5])) < 0.5
}

/// The instant of the instance's last scan at or before the simulated `date`.
pub fn last_scan(profile: &SsmProfile, date: NaiveDate) -> DateTime<Utc> {
    at(profile.last_scan_day(date), profile.scan_minute)
}

/// Every patch the instance reports at its last scan on or before `date`, in release order.
pub fn instance_patches(seed: u64, profile: &SsmProfile, date: NaiveDate) -> Vec<InstancePatch> {
    let scan = last_scan(profile, date);
    let current_week = (scan.date_naive() - catalog_epoch())
        .num_days()
        .div_euclid(7);
    let first_week = (current_week - profile.window_weeks + 1).max(0);
    let available = reports_available_security_updates(seed, profile);
    let mut out: Vec<InstancePatch> = Vec::new();
    for week in first_week..=current_week {
        for patch in Patch::released_in(seed, profile.os, week) {
            if patch.released > scan {
                continue;
            }
            if patch.released + Duration::days(APPROVE_AFTER_DAYS) > scan {
                // Released but not yet approved by the baseline.
                let security =
                    matches!(patch.classification, "SecurityUpdates" | "CriticalUpdates");
                if available && security {
                    out.push(InstancePatch {
                        patch,
                        state: PatchState::AvailableSecurityUpdate,
                        installed_at: None,
                        blank: false,
                    });
                }
                continue;
            }
            let installed_at = |after: i64| {
                let d = patch.released.date_naive() + Duration::days(after);
                at(
                    d,
                    120 + below(combine(patch.hash, &[profile.id_hash]), 50) as i64,
                )
            };
            let (state, installed_at) = match fate(seed, profile, &patch) {
                Fate::NotApplicable => (PatchState::NotApplicable, None),
                Fate::Never => (PatchState::Missing, None),
                Fate::FailsAfter(d) if installed_at(d) <= scan => (PatchState::Failed, None),
                Fate::FailsAfter(_) => (PatchState::Missing, None),
                Fate::Installs {
                    after_days,
                    state,
                    reboot_days,
                } => {
                    let when = installed_at(after_days);
                    if when > scan {
                        (PatchState::Missing, None)
                    } else if when + Duration::days(reboot_days) > scan {
                        (PatchState::InstalledPendingReboot, Some(when))
                    } else {
                        (state, Some(when))
                    }
                }
            };
            let blank = profile.os.is_windows()
                && matches!(
                    state,
                    PatchState::NotApplicable | PatchState::InstalledOther
                )
                && unit(combine(seed, &[profile.id_hash, patch.hash, 0xb1a4])) < BLANK_WINDOWS_ROWS;
            out.push(InstancePatch {
                patch,
                state,
                installed_at,
                blank,
            });
        }
    }
    if !profile.os.is_windows() {
        // One entry per package: its newest approved release (`out` is in release order).
        let mut newest: Vec<Option<InstancePatch>> = vec![None; packages(profile.os).len()];
        for p in out {
            newest[p.patch.package] = Some(p);
        }
        let mut listed: Vec<InstancePatch> = newest.into_iter().flatten().collect();
        listed.sort_by_key(|p| p.patch.seq());
        return listed;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Fleet;

    fn fleet() -> Fleet {
        Fleet {
            seed: 3,
            size: 500,
            hybrid: 0,
            unmanaged_rate: 0.0,
            untagged_rate: 0.0,
        }
    }

    #[test]
    fn states_evolve_over_weeks() {
        let f = fleet();
        let running = (0..f.size)
            .map(|i| f.instance(i).profile)
            .find(|p| p.stopped_on.is_none() && p.agent_lost_on.is_none())
            .expect("a running instance");
        let before = instance_patches(f.seed, &running, day(2026, 3, 1));
        let after = instance_patches(f.seed, &running, day(2026, 3, 29));
        assert!(!before.is_empty() && !after.is_empty());
        let installed = |v: &[InstancePatch]| v.iter().filter(|p| p.installed_at.is_some()).count();
        let newest = |v: &[InstancePatch]| v.iter().map(|p| p.patch.released).max();
        assert!(newest(&after) > newest(&before), "new patches are released");
        assert!(installed(&after) > 0);
        for p in &after {
            assert_eq!(
                p.installed_at.is_some(),
                matches!(
                    p.state,
                    PatchState::Installed
                        | PatchState::InstalledOther
                        | PatchState::InstalledPendingReboot
                        | PatchState::InstalledRejected
                )
            );
        }
    }

    #[test]
    fn a_stopped_instance_keeps_its_last_answer() {
        let f = fleet();
        let stopped = (0..f.size)
            .map(|i| f.instance(i).profile)
            .find(|p| {
                p.stopped_on.is_some_and(|d| d < day(2026, 1, 1)) && p.agent_lost_on.is_none()
            })
            .expect("a stopped instance");
        let a = instance_patches(f.seed, &stopped, day(2026, 2, 1));
        let b = instance_patches(f.seed, &stopped, day(2026, 6, 1));
        let key = |v: &[InstancePatch]| {
            v.iter()
                .map(|p| (p.patch.kb_id(), p.state))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn a_linux_package_keeps_its_kb_id_and_moves_to_new_versions() {
        let f = fleet();
        let linux = (0..f.size)
            .map(|i| f.instance(i).profile)
            .find(|p| {
                p.os == Os::AmazonLinux2 && p.stopped_on.is_none() && p.agent_lost_on.is_none()
            })
            .expect("a running Amazon Linux 2 instance");
        let weeks: Vec<Vec<InstancePatch>> = (0..12)
            .map(|w| instance_patches(f.seed, &linux, day(2026, 3, 1) + Duration::weeks(w)))
            .collect();
        let mut moved = 0;
        for (a, b) in weeks.iter().zip(&weeks[1..]) {
            for pa in a {
                let kb = pa.patch.kb_id();
                assert!(kb.ends_with(".x86_64"), "{kb}");
                let title = pa.patch.title();
                let version = title.strip_prefix(&format!("{kb}:")).expect("name.arch:…");
                assert!(
                    version.starts_with("0:") && version.ends_with(".amzn2"),
                    "{title}"
                );
                if let Some(pb) = b.iter().find(|p| p.patch.kb_id() == kb)
                    && pb.patch.title() != title
                {
                    moved += 1;
                    assert!(
                        pb.patch.released > pa.patch.released,
                        "versions only move forward"
                    );
                }
            }
        }
        assert!(
            moved > 3,
            "packages get new versions over the weeks ({moved})"
        );
        let applicable = |v: &[InstancePatch], kb: &str| {
            v.iter()
                .find(|p| p.patch.kb_id() == kb)
                .map(|p| p.state != PatchState::NotApplicable)
        };
        for p in &weeks[11] {
            let kb = p.patch.kb_id();
            if let Some(before) = applicable(&weeks[10], &kb) {
                assert_eq!(
                    before,
                    applicable(&weeks[11], &kb).unwrap_or(before),
                    "{kb}"
                );
            }
        }
    }

    #[test]
    fn some_windows_baselines_report_available_security_updates() {
        let f = fleet();
        let found = (0..f.size).map(|i| f.instance(i).profile).any(|p| {
            instance_patches(f.seed, &p, day(2026, 3, 4))
                .iter()
                .any(|x| x.state == PatchState::AvailableSecurityUpdate)
        });
        assert!(found);
        for i in 0..f.size {
            let p = f.instance(i).profile;
            for x in instance_patches(f.seed, &p, day(2026, 3, 4)) {
                if x.state == PatchState::AvailableSecurityUpdate {
                    assert!(p.os.is_windows() && reports_available_security_updates(f.seed, &p));
                    assert!(x.installed_at.is_none());
                }
            }
        }
    }

    fn reported(f: &Fleet, os: Os, date: NaiveDate) -> Vec<InstancePatch> {
        (0..f.size)
            .map(|i| f.instance(i).profile)
            .filter(|p| p.os == os)
            .flat_map(|p| instance_patches(f.seed, &p, date))
            .collect()
    }

    #[test]
    fn apt_titles_are_name_arch_version_and_keep_debian_epochs() {
        let f = fleet();
        let rows = reported(&f, Os::Ubuntu2204, day(2026, 3, 4));
        assert!(rows.len() > 100);
        let (mut with_epoch, mut without) = (0, 0);
        for r in &rows {
            let kb = r.patch.kb_id();
            assert!(kb.ends_with(".amd64"), "{kb}");
            let title = r.title();
            let version = title
                .strip_prefix(&format!("{kb}:"))
                .expect("name.arch:version");
            assert!(!version.is_empty(), "{title}");
            // The version may hold a colon of its own: a Debian epoch (`1:`, `2:`).
            match version.split_once(':') {
                Some((epoch, rest)) => {
                    assert!(["1", "2"].contains(&epoch) && !rest.is_empty(), "{title}");
                    with_epoch += 1;
                }
                None => without += 1,
            }
            assert!(["Security", ""].contains(&r.classification()), "{title}");
        }
        assert!(with_epoch > 10 && without > 10, "{with_epoch} {without}");
        assert!(
            rows.iter()
                .any(|r| r.title().starts_with("tzdata.amd64:20"))
        );
    }

    #[test]
    fn amazon_linux_2_bugfix_notices_have_severity_none() {
        let f = fleet();
        let al2 = reported(&f, Os::AmazonLinux2, day(2026, 3, 4));
        let none: Vec<&InstancePatch> = al2.iter().filter(|r| r.severity() == "None").collect();
        assert!(!none.is_empty());
        assert!(none.iter().all(|r| r.classification() != "Security"));
        assert!(
            al2.iter()
                .filter(|r| r.classification() == "Security")
                .all(|r| r.severity() != "None" && !r.severity().is_empty())
        );
        // DNF systems leave it empty.
        for os in [Os::AmazonLinux2023, Os::Rhel9] {
            let rows = reported(&f, os, day(2026, 3, 4));
            assert!(rows.iter().all(|r| r.severity() != "None"), "{os:?}");
            assert!(rows.iter().any(|r| r.severity().is_empty()), "{os:?}");
        }
    }

    #[test]
    fn some_windows_rows_come_without_metadata() {
        let f = fleet();
        let mut rows = reported(&f, Os::WindowsServer2019, day(2026, 3, 4));
        rows.extend(reported(&f, Os::WindowsServer2022, day(2026, 3, 4)));
        let blank: Vec<&InstancePatch> = rows.iter().filter(|r| r.blank).collect();
        for state in [PatchState::NotApplicable, PatchState::InstalledOther] {
            let all = rows.iter().filter(|r| r.state == state).count();
            let few = blank.iter().filter(|r| r.state == state).count();
            assert!(few > 0 && few * 2 < all, "{state:?}: {few} of {all}");
        }
        for r in &blank {
            assert!(r.title().is_empty() && r.classification().is_empty());
            assert!(r.severity().is_empty() && r.patch.kb_id().starts_with("KB"));
        }
        for os in [Os::AmazonLinux2, Os::Ubuntu2204] {
            assert!(reported(&f, os, day(2026, 3, 4)).iter().all(|r| !r.blank));
        }
    }

    #[test]
    fn kb_ids_are_unique_within_an_instance() {
        let f = fleet();
        for i in 0..50 {
            let p = f.instance(i).profile;
            let list = instance_patches(f.seed, &p, day(2026, 11, 1));
            let ids: std::collections::HashSet<String> =
                list.iter().map(|x| x.patch.kb_id()).collect();
            assert_eq!(ids.len(), list.len());
        }
    }
}
