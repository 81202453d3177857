//! `patchtrail evidence`: one zip file that an auditor can check without patchtrail.
//!
//! It holds the reports as of an instant (summary, SLA, exposure; HTML, XLSX, CSV), the stored
//! objects they rest on exactly as stored (the chain entries, the run manifests, and the data
//! objects the manifests list), the verify result, the policy and waiver files applied, and a
//! README that checks every hash with `sha256sum` and `jq`: each file against SHA256SUMS, each
//! manifest against the chain entry that committed it, each data object against its manifest.
//! Nothing in the pack is recomputed for it: stored bytes are copied as they are, so their
//! hashes are the store's own.

use crate::history::LoadedHistory;
use crate::judgments::{SlaPolicy, Waivers};
use crate::render::{OutputFormat, render_table};
use crate::report::Report;
use crate::{QueryError, RunInfo};
use chrono::{DateTime, Utc};
use patchtrail_store::{ChainEntry, Store, chain_key, sha256_hex};
use std::collections::BTreeMap;
use std::io::Write;

/// What to put in a pack.
pub struct EvidenceRequest<'a> {
    pub instant: DateTime<Utc>,
    pub label: &'a str,
    pub stale_days: u32,
    pub policy: &'a SlaPolicy,
    /// The policy file's text, when one was given.
    pub policy_text: Option<&'a str>,
    pub waivers: &'a Waivers,
    pub waivers_text: Option<&'a str>,
    /// Whether to copy the data objects (Parquet or JSON) the manifests list.
    pub with_data: bool,
    /// The tool's version, for the README.
    pub tool: &'a str,
    /// Pack a store that `verify` finds damaged, naming the damage on the README's first lines,
    /// instead of refusing.
    pub pack_damaged: bool,
}

/// A finished pack.
pub struct Evidence {
    pub zip: Vec<u8>,
    pub files: usize,
    pub runs: usize,
    pub findings: usize,
}

/// The pack's files, in order, with their bytes.
#[derive(Default)]
struct Files(BTreeMap<String, Vec<u8>>);

impl Files {
    fn add(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.insert(name.into(), bytes.into());
    }

    /// `sha256sum`'s own format: `<hex>  <name>`, one line per file.
    fn sums(&self) -> String {
        self.0
            .iter()
            .map(|(name, bytes)| format!("{}  {name}\n", sha256_hex(bytes)))
            .collect()
    }
}

fn engine(e: impl std::fmt::Display) -> QueryError {
    QueryError::Engine(e.to_string())
}

/// The reports in each format: `reports/<name>.html|xlsx|csv`, and CSV of the other tables.
fn add_report(files: &mut Files, name: &str, report: &Report) -> Result<(), QueryError> {
    files.add(
        format!("reports/{name}.html"),
        render_table(report, OutputFormat::Html, None)?,
    );
    files.add(
        format!("reports/{name}.xlsx"),
        render_table(report, OutputFormat::Xlsx, None)?,
    );
    for (i, table) in report.tables.iter().enumerate() {
        let file = if i == 0 {
            format!("reports/{name}.csv")
        } else {
            format!("reports/{name}-{}.csv", table.name)
        };
        files.add(
            file,
            render_table(report, OutputFormat::Csv, Some(&table.name))?,
        );
    }
    Ok(())
}

/// The chain entries that commit the manifests in `wanted`, as stored, by manifest key.
async fn chain_entries(
    store: &Store,
    wanted: &BTreeMap<String, &RunInfo>,
) -> Result<BTreeMap<String, (u64, Vec<u8>, ChainEntry)>, QueryError> {
    let mut found = BTreeMap::new();
    for sequence in store.chain_sequences().await? {
        let key = chain_key(sequence);
        let bytes = store.get(&key).await?;
        let entry: ChainEntry =
            serde_json::from_slice(&bytes).map_err(|e| QueryError::Damaged {
                store: store.url().to_string(),
                what: format!("{key} is not a chain entry ({e})"),
            })?;
        if wanted.contains_key(&entry.manifest_key) {
            found.insert(
                entry.manifest_key.clone(),
                (sequence, bytes.to_vec(), entry),
            );
        }
    }
    Ok(found)
}

fn readme(request: &EvidenceRequest, store: &Store, runs: usize, head: &str) -> String {
    format!(
        "EVIDENCE PACK: patch compliance as of {label} ({instant})
Store: {store}
Made by {tool}. Chain head when it was made: {head}

What is here
  reports/        summary, sla and exposure as of {label}: HTML, XLSX and CSV (one CSV per table).
                  What every column means: docs/semantics.md of patchtrail, sections 4 to 8.
  runs.csv        the {runs} committed runs the reports read: run id, scope, snapshot and finish
                  times, manifest, its SHA-256 and the chain entry that committed it.
  store/          those objects exactly as stored, under their store keys:
                  _patchtrail/chain/<sequence>.json  the chain entries that commit the runs
                  runs/.../<run>.json                the run manifests (each lists its data objects)
                  patches/, instances/               the data objects{data}
  verify.txt      `patchtrail verify` of the whole store when the pack was made.
  judgments/      the SLA policy and waiver files the reports applied, if any (their SHA-256 is
                  also in each report's notes).
  SHA256SUMS      the SHA-256 of every other file.

How to check it with standard tools (sha256sum, jq), in this folder:

1. Every file is as it was written:
     sha256sum -c SHA256SUMS

2. Every manifest is the one its chain entry committed (the entry names the manifest and its hash):
     for e in store/_patchtrail/chain/*.json; do
       jq -r '\"\\(.manifest_sha256)  store/\\(.manifest_key)\"' \"$e\"
     done | sha256sum -c

3. Every data object is the one its manifest lists:
     find store/runs -name '*.json' -exec jq -r '.objects[] | \"\\(.sha256)  store/\\(.key)\"' {{}} \\; | sha256sum -c

4. The runs link up: each manifest names the previous manifest of its scope and that manifest's
   SHA-256 (.previous), and each chain entry its sequence:
     jq -r '[.sequence, .run_id, .manifest_key] | @tsv' store/_patchtrail/chain/*.json

5. The history has not been cut short since: keep the chain head above; later,
   `patchtrail verify --store <store> --expect-head {head}` fails if that entry is gone.

Snapshots written by the seed's Step Functions workflow have no manifest; runs.csv names them with
an empty manifest, and they are not in store/.
",
        label = request.label,
        instant = request.instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        store = store.url(),
        tool = request.tool,
        data = if request.with_data {
            ""
        } else {
            " (left out: --without-data; steps 1, 2, 4 still hold)"
        },
    )
}

/// Builds the pack for `request` from `history` (loaded from `store`).
pub async fn evidence_pack(
    history: &LoadedHistory,
    store: &Store,
    request: &EvidenceRequest<'_>,
) -> Result<Evidence, QueryError> {
    let (instant, label, stale) = (request.instant, request.label, request.stale_days);
    // Verified first: a pack of a store that verify rejects must not read as clean evidence.
    let verified = store.verify(None).await?;
    if !verified.findings.is_empty() && !request.pack_damaged {
        return Err(QueryError::Damaged {
            store: store.url().to_string(),
            what: format!(
                "verify finds {} problem(s), the first: {}; an evidence pack must not present it as sound: restore or repair the store, or pass --pack-damaged to pack it with the damage named on the pack's first page",
                verified.findings.len(),
                verified.findings[0]
            ),
        });
    }
    let mut files = Files::default();
    let mut asked = vec![
        (
            "as_of",
            instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        ("stale_days", stale.to_string()),
        ("tool", request.tool.to_string()),
        ("policy", request.policy.describe()),
    ];
    asked.extend(request.waivers.describe().map(|w| ("waivers", w)));
    let mut summary = history.summary(instant, label, stale, None).await?;
    let mut sla = history
        .sla(instant, label, stale, request.policy, request.waivers)
        .await?;
    let findings = sla.tables[0].rows();
    let mut exposure = history
        .exposure(instant, label, stale, &[], request.waivers)
        .await?;
    for (name, report) in [
        ("summary", &mut summary),
        ("sla", &mut sla),
        ("exposure", &mut exposure),
    ] {
        history
            .attach_provenance(report, &asked, Some(instant))
            .await?;
        add_report(&mut files, name, report)?;
    }

    // The runs the reports read: every run in force by the instant.
    let used: Vec<&RunInfo> = history
        .runs
        .iter()
        .filter(|r| r.finished_at <= instant)
        .collect();
    let manifests: BTreeMap<String, &RunInfo> = used
        .iter()
        .filter_map(|r| r.manifest_key.clone().map(|k| (k, *r)))
        .collect();
    let entries = chain_entries(store, &manifests).await?;
    let mut runs_csv = String::from(
        "run_id,account_id,region,snapshot_time,finished_at,manifest_key,manifest_sha256,chain_sequence\n",
    );
    for run in &used {
        let (key, sha, seq) = match run
            .manifest_key
            .as_ref()
            .and_then(|k| entries.get(k).map(|e| (k, e)))
        {
            Some((key, (seq, bytes, entry))) => {
                files.add(format!("store/{}", chain_key(*seq)), bytes.clone());
                (key.clone(), entry.manifest_sha256.clone(), seq.to_string())
            }
            None => Default::default(),
        };
        if !key.is_empty() {
            let manifest = store.get(&key).await?;
            if sha256_hex(&manifest) != sha {
                return Err(QueryError::Damaged {
                    store: store.url().to_string(),
                    what: format!("manifest {key} no longer hashes to its chain entry"),
                });
            }
            if request.with_data {
                let listed: serde_json::Value =
                    serde_json::from_slice(&manifest).map_err(engine)?;
                for object in listed["objects"].as_array().into_iter().flatten() {
                    if let Some(data_key) = object["key"].as_str() {
                        let bytes = store.get(data_key).await?;
                        files.add(format!("store/{data_key}"), bytes.to_vec());
                    }
                }
            }
            files.add(format!("store/{key}"), manifest.to_vec());
        }
        runs_csv.push_str(&format!(
            "{},{},{},{},{},{key},{sha},{seq}\n",
            run.run_id,
            run.account_id,
            run.region,
            run.snapshot_time
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            run.finished_at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        ));
    }
    files.add("runs.csv", runs_csv);

    let head = verified
        .head
        .as_ref()
        .map_or_else(|| "none".to_string(), |h| h.witness());
    files.add("verify.txt", verified.lines(store.url()).join("\n") + "\n");
    if let (Some(text), Some(source)) = (request.policy_text, &request.policy.source) {
        files.add(format!("judgments/{}", file_name(&source.path)), text);
    }
    if let (Some(text), Some(source)) = (request.waivers_text, &request.waivers.source) {
        files.add(format!("judgments/{}", file_name(&source.path)), text);
    }
    let mut first_page = readme(request, store, used.len(), &head);
    if !verified.findings.is_empty() {
        let damage: String = verified
            .findings
            .iter()
            .map(|f| format!("  {f}\n"))
            .collect();
        first_page = format!(
            "WARNING: THE STORE IS DAMAGED. `patchtrail verify` found {} problem(s) when this pack was made\n(verify.txt has them all); the reports may rest on altered or incomplete history:\n{damage}\n{first_page}",
            verified.findings.len()
        );
    }
    files.add("README.txt", first_page);
    let sums = files.sums();
    files.add("SHA256SUMS", sums);

    let count = files.0.len();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (name, bytes) in &files.0 {
        zip.start_file(format!("evidence/{name}"), options)
            .map_err(engine)?;
        zip.write_all(bytes).map_err(engine)?;
    }
    let zip = zip.finish().map_err(engine)?.into_inner();
    Ok(Evidence {
        zip,
        files: count,
        runs: used.len(),
        findings,
    })
}

/// The last component of a path as given on the command line.
fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned())
}
