//! SSM `DescribeAvailablePatches`: the patches of the simulated catalogs, with their release
//! dates, as patchtrail reads them for its SLA clocks (docs/semantics.md §1.3, §8.3).
//!
//! Shapes from AWS's API reference (`DescribeAvailablePatches`, the `Patch` and
//! `PatchOrchestratorFilter` types): the operation "supports only the Amazon Linux 1, Amazon Linux
//! 2, and Windows Server operating systems"; Windows filter keys are PATCH_SET, PRODUCT,
//! PRODUCT_FAMILY, MSRC_SEVERITY, CLASSIFICATION and PATCH_ID (sample values `KB123456`); a Linux
//! filter must come with a PRODUCT (sample values `AmazonLinux2018.03`, `AmazonLinux2.0`), with
//! NAME, EPOCH, VERSION, RELEASE, ARCH, CLASSIFICATION and SEVERITY among its keys; at most 5
//! filters of 0 to 20 values; `MaxResults` 1 to 100. `ReleaseDate` is a timestamp (epoch seconds
//! on the awsJson1_1 wire); `Id` and `KbNumber` apply to Windows only, `Name`, `Epoch` (an
//! integer), `Version`, `Release`, `Arch`, `AdvisoryIds` and `CVEIds` to Linux only.

use crate::Sim;
use crate::fleet::Os;
use crate::hash::{combine, of_str};
use crate::patches::Patch;
use crate::ssm::{orchestrator_filters, page_offset, page_size, validation};
use crate::wire::WireResponse;
use chrono::NaiveDate;
use serde_json::{Map, Value, json};

const WINDOWS_KEYS: [&str; 6] = [
    "PATCH_SET",
    "PRODUCT",
    "PRODUCT_FAMILY",
    "MSRC_SEVERITY",
    "CLASSIFICATION",
    "PATCH_ID",
];
const LINUX_KEYS: [&str; 9] = [
    "PRODUCT",
    "NAME",
    "EPOCH",
    "VERSION",
    "RELEASE",
    "ARCH",
    "CLASSIFICATION",
    "SEVERITY",
    "REPOSITORY",
];

/// The products the simulated catalogs answer for (Amazon Linux 2 under both spellings AWS uses).
fn product_os(product: &str) -> Option<Os> {
    match product {
        "WindowsServer2019" => Some(Os::WindowsServer2019),
        "WindowsServer2022" => Some(Os::WindowsServer2022),
        "AmazonLinux2" | "AmazonLinux2.0" => Some(Os::AmazonLinux2),
        _ => None,
    }
}

fn product_name(os: Os) -> &'static str {
    match os {
        Os::WindowsServer2019 => "WindowsServer2019",
        Os::WindowsServer2022 => "WindowsServer2022",
        _ => "AmazonLinux2",
    }
}

type Filters = Vec<(String, Vec<String>)>;

/// Whether `value` passes the filter on `key`, when there is one.
fn admits(filters: &Filters, key: &str, value: &str) -> bool {
    filters
        .iter()
        .filter(|(k, _)| k == key)
        .all(|(_, vs)| vs.is_empty() || vs.iter().any(|v| v == value))
}

fn windows_json(p: &Patch) -> Value {
    let kb = p.kb_id();
    json!({
        "Id": format!("{:08x}-0000-4000-8000-{:012x}", p.week, combine(of_str(&kb), &[0x1d]) & 0xffff_ffff_ffff),
        "ReleaseDate": p.released.timestamp() as f64,
        "Title": p.title(),
        "Description": format!("Install this update to resolve issues in Windows. ({kb})"),
        "ContentUrl": format!("https://support.microsoft.com/en-us/kb/{}", &kb[2..]),
        "Vendor": "Microsoft",
        "ProductFamily": "Windows",
        "Product": product_name(p.os),
        "Classification": p.classification,
        "MsrcSeverity": p.severity,
        "KbNumber": kb,
        "MsrcNumber": "",
        "Language": "All",
    })
}

/// `epoch:version-release` split as AWS's Linux `Patch` type carries it.
fn linux_parts(p: &Patch) -> (i64, String, String) {
    let full = p.linux_version();
    let (epoch, rest) = full.split_once(':').unwrap_or(("0", &full));
    let (version, release) = rest.rsplit_once('-').unwrap_or((rest, ""));
    (
        epoch.parse().unwrap_or(0),
        version.to_string(),
        release.to_string(),
    )
}

fn linux_json(p: &Patch) -> Value {
    let (epoch, version, release) = linux_parts(p);
    let name = p.package_name();
    let mut m = json!({
        "ReleaseDate": p.released.timestamp() as f64,
        "Title": format!("Amazon Linux 2 {} update for {name}", p.severity),
        "Description": format!("Package updates are available for Amazon Linux 2 that fix {name}."),
        "Classification": p.classification,
        "Severity": p.severity,
        "Name": name,
        "Epoch": epoch,
        "Version": version,
        "Release": release,
        "Arch": "x86_64",
        "Repository": "amzn2-core",
        "Product": "AmazonLinux2",
        "AdvisoryIds": [format!("ALAS2-{}-{:03}", p.released.format("%Y"), p.week * 8 + p.slot as i64)],
    });
    if let Some(cves) = p.cve_ids() {
        m["CVEIds"] = Value::from(cves.split(',').collect::<Vec<_>>());
    }
    m
}

/// The patches `filters` select, in catalog order, as wire JSON.
fn selected(sim: &Sim, filters: &Filters, date: NaiveDate) -> Result<Vec<Value>, WireResponse> {
    let seed = sim.config.seed;
    let products: Vec<&str> = filters
        .iter()
        .filter(|(k, _)| k == "PRODUCT")
        .flat_map(|(_, vs)| vs.iter().map(String::as_str))
        .collect();
    let linux_product = products.iter().any(|p| p.starts_with("AmazonLinux"));
    let keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    if linux_product || keys.iter().any(|k| !WINDOWS_KEYS.contains(k)) {
        if !linux_product {
            return Err(validation(
                "A PRODUCT filter is required when filtering Linux patches".to_string(),
            ));
        }
        if let Some(bad) = keys.iter().find(|k| !LINUX_KEYS.contains(k)) {
            return Err(WireResponse::json_error(
                400,
                "ValidationException",
                &format!("The filter key {bad} is not valid for Linux patches"),
            ));
        }
        // Amazon Linux 2 only: Amazon Linux 2023 and other systems have no catalog here, as in AWS.
        if !products
            .iter()
            .any(|p| product_os(p) == Some(Os::AmazonLinux2))
        {
            return Ok(Vec::new());
        }
        return Ok(Patch::released_by(seed, Os::AmazonLinux2, date)
            .filter(|p| {
                let (epoch, version, release) = linux_parts(p);
                admits(filters, "NAME", p.package_name())
                    && admits(filters, "EPOCH", &epoch.to_string())
                    && admits(filters, "VERSION", &version)
                    && admits(filters, "RELEASE", &release)
                    && admits(filters, "ARCH", "x86_64")
                    && admits(filters, "CLASSIFICATION", p.classification)
                    && admits(filters, "SEVERITY", p.severity)
            })
            .map(|p| linux_json(&p))
            .collect());
    }
    let windows = |p: &Patch| {
        admits(filters, "PRODUCT", product_name(p.os))
            && admits(filters, "PRODUCT_FAMILY", "Windows")
            && admits(filters, "PATCH_SET", "OS")
            && admits(filters, "CLASSIFICATION", p.classification)
            && admits(filters, "MSRC_SEVERITY", p.severity)
    };
    let ids: Vec<&String> = filters
        .iter()
        .filter(|(k, _)| k == "PATCH_ID")
        .flat_map(|(_, vs)| vs)
        .collect();
    let patches: Vec<Patch> = if ids.is_empty() {
        [Os::WindowsServer2019, Os::WindowsServer2022]
            .into_iter()
            .flat_map(|os| Patch::released_by(seed, os, date))
            .collect()
    } else {
        ids.iter()
            .filter_map(|kb| Patch::windows_by_kb(seed, kb, date))
            .collect()
    };
    Ok(patches
        .iter()
        .filter(|p| windows(p))
        .map(windows_json)
        .collect())
}

pub fn describe_available_patches(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> WireResponse {
    page(sim, body, date).unwrap_or_else(|e| e)
}

fn page(
    sim: &Sim,
    body: &Map<String, Value>,
    date: NaiveDate,
) -> Result<WireResponse, WireResponse> {
    let filters = orchestrator_filters(body)?;
    let size = page_size(body, (1, 100), 100)?;
    let text: String = filters
        .iter()
        .map(|(k, vs)| format!("{k}={}", vs.join(",")))
        .collect::<Vec<_>>()
        .join(";");
    let fingerprint = combine(of_str(&text), &[0xa7a1]);
    let offset = page_offset(sim, body, fingerprint)?;
    let all = selected(sim, &filters, date)?;
    let end = (offset + size).min(all.len());
    let mut out = json!({ "Patches": all.get(offset..end).unwrap_or_default() });
    if end < all.len() {
        out["NextToken"] = Value::String(sim.next_token(fingerprint, end as u64));
    }
    Ok(WireResponse::json(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    fn ask(sim: &Sim, body: Value) -> Value {
        let map = body.as_object().cloned().unwrap_or_default();
        let answer = describe_available_patches(sim, &map, sim.date());
        serde_json::from_str(&answer.body).expect("json")
    }

    #[test]
    fn answers_windows_kbs_and_amazon_linux_2_packages_with_release_dates() {
        let sim = Sim::new(SimConfig::default());
        let listed = ask(
            &sim,
            json!({"Filters": [{"Key": "PRODUCT", "Values": ["WindowsServer2019"]}]}),
        );
        let first = &listed["Patches"][0];
        let kb = first["KbNumber"].as_str().expect("a KB").to_string();
        let by_id = ask(
            &sim,
            json!({"Filters": [{"Key": "PATCH_ID", "Values": [kb]}]}),
        );
        assert_eq!(by_id["Patches"].as_array().map(Vec::len), Some(1));
        assert_eq!(by_id["Patches"][0]["ReleaseDate"], first["ReleaseDate"]);
        let linux = ask(
            &sim,
            json!({"Filters": [{"Key": "PRODUCT", "Values": ["AmazonLinux2.0"]}, {"Key": "NAME", "Values": ["kernel"]}]}),
        );
        let p = &linux["Patches"][0];
        assert_eq!(
            (p["Name"].as_str(), p["Epoch"].as_i64()),
            (Some("kernel"), Some(0))
        );
        assert!(p["Release"].as_str().is_some_and(|r| r.ends_with(".amzn2")));
        // A Linux filter without PRODUCT is refused, Amazon Linux 2023 has no catalog.
        let refused = describe_available_patches(
            &sim,
            json!({"Filters": [{"Key": "NAME", "Values": ["kernel"]}]})
                .as_object()
                .expect("map"),
            sim.date(),
        );
        assert_eq!(refused.status, 400);
        let none = ask(
            &sim,
            json!({"Filters": [{"Key": "PRODUCT", "Values": ["AmazonLinux2023"]}]}),
        );
        assert_eq!(none["Patches"].as_array().map(Vec::len), Some(0));
    }
}
