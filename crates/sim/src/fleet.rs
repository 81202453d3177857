//! The synthetic fleet: EC2 instances generated lazily from (seed, index), and the SSM profile
//! of any instance id generated from (seed, id).
//!
//! Nothing is materialised: instance `i` is computed when a page needs it, so a fleet of 100,000
//! costs no memory. SSM facts depend only on the id, which is what lets the simulator answer for
//! instance ids it never created (taken from moto, say).

use crate::hash::{below, combine, of_str, unit};
use chrono::{Duration, NaiveDate};

/// Operating systems of the fleet; each has its own patch catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Os {
    WindowsServer2019,
    WindowsServer2022,
    AmazonLinux2,
    AmazonLinux2023,
    Rhel9,
    Ubuntu2204,
}

impl Os {
    pub const ALL: [Os; 6] = [
        Os::WindowsServer2019,
        Os::WindowsServer2022,
        Os::AmazonLinux2,
        Os::AmazonLinux2023,
        Os::Rhel9,
        Os::Ubuntu2204,
    ];

    pub fn is_windows(self) -> bool {
        matches!(self, Os::WindowsServer2019 | Os::WindowsServer2022)
    }

    /// EC2 `platformDetails`.
    pub fn platform_details(self) -> &'static str {
        match self {
            Os::WindowsServer2019 | Os::WindowsServer2022 => "Windows",
            Os::AmazonLinux2 | Os::AmazonLinux2023 | Os::Ubuntu2204 => "Linux/UNIX",
            Os::Rhel9 => "Red Hat Enterprise Linux",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Os::WindowsServer2019 => "win2019",
            Os::WindowsServer2022 => "win2022",
            Os::AmazonLinux2 => "al2",
            Os::AmazonLinux2023 => "al2023",
            Os::Rhel9 => "rhel9",
            Os::Ubuntu2204 => "ubuntu2204",
        }
    }

    fn pick(h: u64) -> Os {
        // Windows 35 %, AL2 20 %, AL2023 20 %, RHEL 12 %, Ubuntu 13 %.
        match below(h, 100) {
            0..=14 => Os::WindowsServer2019,
            15..=34 => Os::WindowsServer2022,
            35..=54 => Os::AmazonLinux2,
            55..=74 => Os::AmazonLinux2023,
            75..=86 => Os::Rhel9,
            _ => Os::Ubuntu2204,
        }
    }
}

/// What SSM knows about one instance id: derived from the id alone.
#[derive(Debug, Clone)]
pub struct SsmProfile {
    pub id_hash: u64,
    pub os: Os,
    pub managed: bool,
    /// First catalog week whose patches apply to this instance.
    pub window_weeks: i64,
    /// Day it was stopped (if ever): scans stop then.
    pub stopped_on: Option<NaiveDate>,
    /// Day its agent stopped reporting while running (a stale scan).
    pub agent_lost_on: Option<NaiveDate>,
    /// Minutes after midnight UTC of the daily scan.
    pub scan_minute: i64,
    pub operation_install: bool,
    pub environment: &'static str,
    /// Diligent instances install approved patches within days; the others lag, fail, skip.
    pub diligent: bool,
    /// Registered with SSM but never scanned (no patch baseline operation has run): no patch
    /// state, and an empty patch list, as SSM answers for such a node.
    pub never_scanned: bool,
}

const ENVIRONMENTS: [&str; 3] = ["prod", "staging", "dev"];

impl SsmProfile {
    pub fn of(seed: u64, instance_id: &str, unmanaged_rate: f64) -> SsmProfile {
        let id_hash = of_str(instance_id);
        let h = |salt: u64| combine(seed, &[id_hash, salt]);
        let os = Os::pick(h(1));
        let heavy = unit(h(2)) < 0.05;
        let window_weeks = if heavy {
            60 + below(h(3), 45) as i64
        } else {
            6 + below(h(3), 12) as i64
        };
        // Stopped instances: stopped on a day between 2025-06-01 and 2026-10-31.
        let stopped_on =
            (unit(h(4)) < 0.12).then(|| day(2025, 6, 1) + Duration::days(below(h(5), 518) as i64));
        let agent_lost_on =
            (unit(h(6)) < 0.03).then(|| day(2025, 9, 1) + Duration::days(below(h(7), 450) as i64));
        SsmProfile {
            id_hash,
            os,
            managed: unit(h(8)) >= unmanaged_rate,
            window_weeks,
            stopped_on,
            agent_lost_on,
            scan_minute: 180 + below(h(9), 120) as i64,
            operation_install: below(h(10), 3) == 0,
            environment: ENVIRONMENTS[below(h(11), 3) as usize],
            diligent: unit(h(12)) < 0.6,
            never_scanned: unit(h(13)) < 0.02,
        }
    }

    /// EC2 state on `date`.
    pub fn is_stopped(&self, date: NaiveDate) -> bool {
        self.stopped_on.is_some_and(|d| d <= date)
    }

    /// The last day whose scan ran at or before `date` (scans stop when the instance stops or
    /// its agent is lost).
    pub fn last_scan_day(&self, date: NaiveDate) -> NaiveDate {
        let mut last = date;
        for cutoff in [self.stopped_on, self.agent_lost_on].into_iter().flatten() {
            if cutoff <= date {
                last = last.min(cutoff - Duration::days(1));
            }
        }
        last
    }
}

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// An EC2 instance of the simulated fleet.
#[derive(Debug, Clone)]
pub struct Ec2Instance {
    pub index: u64,
    pub instance_id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: &'static str,
    pub launch_day: NaiveDate,
    /// Day the instance was terminated (it is gone from EC2 from then on).
    pub terminated_on: Option<NaiveDate>,
    pub tags: Vec<(String, String)>,
    pub profile: SsmProfile,
    /// A hybrid-activation node (`mi-…`, an on-premises or other-cloud server): SSM manages it,
    /// EC2 does not know it.
    pub hybrid: bool,
}

const ROLES: [&str; 8] = ["web", "app", "api", "db", "batch", "cache", "ad", "bastion"];

/// The simulated fleet: `size` instances derived from `seed`.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub seed: u64,
    pub size: u64,
    /// Hybrid nodes, after the EC2 instances in SSM's node list.
    pub hybrid: u64,
    pub unmanaged_rate: f64,
    pub untagged_rate: f64,
}

impl Fleet {
    pub fn instance_id(&self, index: u64) -> String {
        format!("i-0{:016x}", combine(self.seed, &[0x1d, index]))
    }

    /// SSM's node list in order: the EC2 instances (`0..size`), then the hybrid nodes.
    pub fn nodes_len(&self) -> u64 {
        self.size + self.hybrid
    }

    /// The member of SSM's node list at `position` (see [`Fleet::nodes_len`]).
    pub fn node_at(&self, position: u64) -> Ec2Instance {
        if position < self.size {
            return self.instance(position);
        }
        let k = position - self.size;
        // `mi-` and 17 hex digits, as hybrid activations name their nodes.
        let id = format!("mi-0{:016x}", combine(self.seed, &[0x4b, k]));
        let mut node = self.instance_with_id(position, id);
        node.hybrid = true;
        node.instance_type = "";
        node.terminated_on = None;
        if let Some((_, name)) = node.tags.iter_mut().find(|(k, _)| k == "Name") {
            *name = name.replacen('-', "-onprem-", 1);
        }
        node
    }

    pub fn instance(&self, index: u64) -> Ec2Instance {
        self.instance_with_id(index, self.instance_id(index))
    }

    fn instance_with_id(&self, index: u64, instance_id: String) -> Ec2Instance {
        let profile = SsmProfile::of(self.seed, &instance_id, self.unmanaged_rate);
        let h = |salt: u64| combine(self.seed, &[profile.id_hash, 0x100 + salt]);
        let role = ROLES[below(h(1), ROLES.len() as u64) as usize];
        let os = profile.os;
        let instance_type = match (os.is_windows(), below(h(2), 4)) {
            (true, 0) => "m5.large",
            (true, 1) => "m6i.xlarge",
            (true, _) => "t3.large",
            (false, 0) => "t3.micro",
            (false, 1) => "t3.medium",
            (false, 2) => "m6g.large",
            (false, _) => "c6i.large",
        };
        let mut tags = vec![
            (
                "Name".to_string(),
                format!("{}-{}-{:04}", profile.environment, role, index),
            ),
            ("Environment".to_string(), profile.environment.to_string()),
            ("Role".to_string(), role.to_string()),
        ];
        if unit(h(3)) >= self.untagged_rate {
            let value = if below(h(4), 5) == 0 {
                "weekly"
            } else {
                "true"
            };
            tags.push(("CheckPatch".to_string(), value.to_string()));
        }
        Ec2Instance {
            index,
            reservation_id: format!("r-0{:016x}", combine(self.seed, &[0x2e, index])),
            image_id: format!("ami-0{:016x}", combine(self.seed, &[0x3f, os as u64])),
            instance_type,
            // Most of the fleet is old; a tenth was launched recently, so it appears over time.
            launch_day: if unit(h(6)) < 0.10 {
                day(2025, 6, 1) + Duration::days(below(h(5), 550) as i64)
            } else {
                day(2023, 1, 2) + Duration::days(below(h(5), 600) as i64)
            },
            terminated_on: (unit(h(7)) < 0.02)
                .then(|| day(2025, 9, 1) + Duration::days(below(h(8), 480) as i64)),
            tags,
            profile,
            instance_id,
            hybrid: false,
        }
    }

    /// Whether `DescribeInstances` lists the instance on `date`: from its launch until the day
    /// after its termination (EC2 keeps terminated instances visible for a while; the simulator's
    /// clock has days).
    pub fn exists_on(instance: &Ec2Instance, date: NaiveDate) -> bool {
        instance.launch_day <= date
            && instance
                .terminated_on
                .is_none_or(|t| date <= t + Duration::days(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            seed: 7,
            size: 2000,
            hybrid: 0,
            unmanaged_rate: 0.03,
            untagged_rate: 0.15,
        }
    }

    #[test]
    fn ids_look_like_ec2_ids_and_are_distinct() {
        let f = fleet();
        let ids: std::collections::HashSet<String> =
            (0..f.size).map(|i| f.instance_id(i)).collect();
        assert_eq!(ids.len() as u64, f.size);
        assert!(ids.iter().all(|id| id.len() == 19 && id.starts_with("i-0")));
    }

    #[test]
    fn fleet_has_the_promised_mix() {
        let f = fleet();
        let all: Vec<Ec2Instance> = (0..f.size).map(|i| f.instance(i)).collect();
        let today = day(2026, 11, 28);
        let count = |p: &dyn Fn(&Ec2Instance) -> bool| all.iter().filter(|i| p(i)).count();
        assert!(count(&|i| i.profile.is_stopped(today)) > 50);
        assert!(count(&|i| !i.profile.managed) > 10);
        assert!(count(&|i| i.tags.iter().all(|(k, _)| k != "CheckPatch")) > 100);
        assert!(count(&|i| i.profile.window_weeks >= 60) > 20);
        for os in Os::ALL {
            assert!(
                count(&|i| i.profile.os == os) > 50,
                "{os:?} is under-represented"
            );
        }
    }

    #[test]
    fn stopped_instances_stop_scanning() {
        let f = fleet();
        let stopped = (0..f.size)
            .map(|i| f.instance(i).profile)
            .find(|p| p.stopped_on.is_some() && p.agent_lost_on.is_none())
            .expect("a stopped instance");
        let on = stopped.stopped_on.expect("stopped");
        assert_eq!(
            stopped.last_scan_day(on + Duration::days(30)),
            on - Duration::days(1)
        );
        assert_eq!(
            stopped.last_scan_day(on - Duration::days(3)),
            on - Duration::days(3)
        );
    }
}
