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
use crate::kev::Kev;
use crate::render::{OutputFormat, render_table};
use crate::report::Report;
use crate::{QueryError, RunInfo};
use chrono::{DateTime, Utc};
use patchtrail_store::{ChainEntry, Store, Witness, chain_key, sha256_hex};
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
    /// The KEV catalog applied (§8.3) and its file's text, when one was given.
    pub kev: &'a Kev,
    pub kev_text: Option<&'a str>,
    /// Whether to copy the data objects (Parquet or JSON) the manifests list.
    pub with_data: bool,
    /// The tool's version and commit, for the README and the reports' provenance.
    pub tool: &'a str,
    /// When the pack was made (the clock, or `SOURCE_DATE_EPOCH` to make it again byte for byte).
    pub generated_at: DateTime<Utc>,
    /// Pack a store that `verify` finds damaged, naming the damage on the README's first lines,
    /// instead of refusing.
    pub pack_damaged: bool,
    /// A head witness recorded earlier that the chain must still hold (verify checks it).
    pub expect_head: Option<&'a Witness>,
    /// The time zone the dates were read in (`--tz`), named on the README's first line.
    pub tz: &'a str,
}

/// A finished pack.
pub struct Evidence {
    pub zip: Vec<u8>,
    pub files: usize,
    pub runs: usize,
    pub findings: usize,
    /// The witness of the newest chain entry packed (`<sequence>:<sha256>`), or `none`.
    pub head: String,
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

/// Every chain entry, as stored, by sequence: the pack carries the whole chain so that an
/// auditor can follow its links from the first entry to the head.
async fn chain_entries(store: &Store) -> Result<BTreeMap<u64, (Vec<u8>, ChainEntry)>, QueryError> {
    let mut found = BTreeMap::new();
    for sequence in store.chain_sequences().await? {
        let key = chain_key(sequence);
        let bytes = store.get(&key).await?;
        let entry: ChainEntry =
            serde_json::from_slice(&bytes).map_err(|e| QueryError::Damaged {
                store: store.url().to_string(),
                what: format!("{key} is not a chain entry ({e})"),
            })?;
        found.insert(sequence, (bytes.to_vec(), entry));
    }
    Ok(found)
}

/// The pack's README: what is here, and the procedure that checks it with bash, sha256sum and
/// jq alone. Each numbered step is one command that prints FAILED and fails when its check does;
/// the steps an auditor runs with values given apart from the pack read them from the
/// environment (PACK, PACK_SHA256, HEAD, EARLIER).
fn readme(request: &EvidenceRequest, store: &Store, runs: usize, head: &str) -> String {
    let expected = request.expect_head.map_or_else(String::new, |w| {
        format!(
            "\nHead given with --expect-head: {}:{} (verify found it in the chain when the pack was made)",
            w.sequence, w.sha256
        )
    });
    format!(
        "EVIDENCE PACK: patch compliance as of {label} ({instant}; dates in time zone {tz})
Store: {store}
Made by {tool} at {generated_at}. Chain head when it was made: {head}{expected}

What is here
  reports/        summary, sla and exposure as of {label}: HTML, XLSX and CSV (one CSV per table);
                  each report's provenance table names the tool's commit, the time zone, the
                  report and when it ran. What every column means: docs/semantics.md of
                  patchtrail, sections 4 to 8.
  runs.csv        the {runs} committed runs the reports read: run id, scope, snapshot and finish
                  times, manifest, its SHA-256 and the chain entry that committed it.
  store/          objects exactly as stored, under their store keys:
                  _patchtrail/chain/<sequence>.json  every chain entry, from 1 to the head
                  runs/.../<run>.json                every manifest they commit (each names the
                                                     manifest before it and lists its data objects)
                  patches/, instances/               the data objects of the runs the reports read{data}
  verify.txt      `patchtrail verify` of the whole store when the pack was made.
  judgments/      policy/, waivers/ and kev/: the SLA policy, waiver files and KEV catalog the
                  reports applied, if any, under their own names (their SHA-256 is also in each
                  report's notes).
  SHA256SUMS      the SHA-256 of every other file.

How to check it with standard tools (bash, sha256sum, jq), in this folder. Each step is one
command: it prints FAILED and returns non-zero when the check fails. Two values must reach you
apart from the pack (a ticket, a signed email, a call), since whoever could change the pack could
change this file too: the SHA-256 of the zip and the chain head, both printed by
`patchtrail evidence` when it made the pack.

1. Nothing was added or removed: the files here are exactly those SHA256SUMS lists:
     diff <(find . -type f ! -path ./SHA256SUMS | sed 's|^\\./||' | LC_ALL=C sort) <(cut -c67- SHA256SUMS | LC_ALL=C sort) || {{ echo FAILED: files differ from SHA256SUMS; false; }}

2. Every file is as it was written:
     sha256sum --strict --quiet -c SHA256SUMS || {{ echo FAILED: a file differs from SHA256SUMS; false; }}

3. This is the pack that was made (a pack changed and its SHA256SUMS written again passes steps 1
   and 2, never this one). Set PACK to the zip file and PACK_SHA256 to the SHA-256 you were given:
     echo \"${{PACK_SHA256:?the SHA-256 you were given}}  ${{PACK:?the zip file}}\" | sha256sum --quiet -c || {{ echo FAILED: not the pack that was made; false; }}

4. The chain links up from entry 1 to the newest entry packed: each entry commits one manifest by
   its SHA-256, and each manifest names the manifest of the entry before it (`previous`, key and
   SHA-256), so a run changed, added or removed anywhere breaks a link or the head (step 5):
     ( pk=; ps=; n=0; for e in store/_patchtrail/chain/*.json; do n=$((n + 1)); m=store/$(jq -r .manifest_key \"$e\"); test -f \"$m\" || {{ echo \"FAILED: entry $n commits $m, which is not here\"; exit 1; }}; sha=$(sha256sum < \"$m\" | cut -c1-64); test \"$(jq -r .sequence \"$e\")\" = \"$n\" || {{ echo \"FAILED: entry $n is not where $e is\"; exit 1; }}; test \"$sha\" = \"$(jq -r .manifest_sha256 \"$e\")\" || {{ echo \"FAILED: $m is not what entry $n commits\"; exit 1; }}; test \"$(jq -r '[.sequence, .run_id] | @tsv' \"$m\")\" = \"$(jq -r '[.sequence, .run_id] | @tsv' \"$e\")\" || {{ echo \"FAILED: $m is not entry $n's run\"; exit 1; }}; test \"$(jq -r '[.previous.key // \"\", .previous.sha256 // \"\"] | @tsv' \"$m\")\" = \"$(printf '%s\\t%s' \"$pk\" \"$ps\")\" || {{ echo \"FAILED: $m does not follow entry $((n - 1))\"; exit 1; }}; pk=${{m#store/}}; ps=$sha; done; echo \"chain OK: entries 1 to $n\" )

5. The chain ends at the head you were given (set HEAD to it, `<sequence>:<sha256>`):
     e=$(ls store/_patchtrail/chain/*.json | tail -n 1); test \"$(jq -r .sequence \"$e\"):$(sha256sum < \"$e\" | cut -c1-64)\" = \"${{HEAD:?the head you were given}}\" || {{ echo FAILED: the chain ends at another head; false; }}

6. A head you recorded earlier (the last audit's pack, or `patchtrail verify`) is still in the
   chain with the same bytes, so nothing before it was rewritten since (set EARLIER to it):
     f=store/_patchtrail/chain/$(printf %012d \"${{EARLIER%%:*}}\").json; test -f \"$f\" && test \"$(sha256sum < \"$f\" | cut -c1-64)\" = \"${{EARLIER#*:}}\" || {{ echo FAILED: that head is not in the chain; false; }}

7. runs.csv names runs the chain commits, with their manifests' SHA-256:
     tail -n +2 runs.csv | while IFS=, read -r run account region snapshot finished key sha seq; do test -z \"$key\" || test \"$(jq -r '[.run_id, .manifest_key, .manifest_sha256] | join(\",\")' \"store/_patchtrail/chain/$(printf %012d \"$seq\").json\")\" = \"$run,$key,$sha\" || {{ echo \"FAILED: runs.csv row $run is not chain entry $seq\"; exit 1; }}; done

8. Every data object of the runs the reports read is the one its manifest lists{data_step}:
     tail -n +2 runs.csv | cut -d, -f6 | grep . | while read -r key; do jq -r '.objects[] | \"\\(.sha256)  store/\\(.key)\"' \"store/$key\"; done | sha256sum --strict -c

9. The history is not cut short later: keep the head; `patchtrail verify --store <store>
   --expect-head {head}` fails once that entry is gone or changed.

Snapshots written by the seed's Step Functions workflow have no manifest; runs.csv names them with
an empty manifest, and they are not in store/.
",
        label = request.label,
        instant = micros(request.instant),
        tz = request.tz,
        store = store.url(),
        tool = request.tool,
        generated_at = micros(request.generated_at),
        data = if request.with_data {
            ""
        } else {
            " (left out: --without-data)"
        },
        data_step = if request.with_data {
            ""
        } else {
            " (this pack was made --without-data: skip it)"
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
    let verified = store.verify(request.expect_head).await?;
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
    // What §7.2 asks of every report's provenance: the report, the instant and zone, the tool's
    // commit and when it ran, and the judgments applied.
    let mut asked = vec![
        ("report", String::new()),
        ("as_of", micros(instant)),
        ("time_zone", request.tz.to_string()),
        ("stale_days", stale.to_string()),
        ("policy", request.policy.describe()),
    ];
    asked.extend(request.waivers.describe().map(|w| ("waivers", w)));
    asked.extend(request.kev.describe().map(|k| ("kev", k)));
    asked.push(("tool", request.tool.to_string()));
    asked.push(("generated_at", micros(request.generated_at)));
    let mut summary = history.summary(instant, label, stale, None).await?;
    let mut sla = history
        .sla(
            instant,
            label,
            stale,
            request.policy,
            request.waivers,
            request.kev,
        )
        .await?;
    let findings = sla.tables[0].rows();
    let mut exposure = history
        .exposure(instant, label, stale, &[], request.waivers, request.kev)
        .await?;
    for (name, report) in [
        ("summary", &mut summary),
        ("sla", &mut sla),
        ("exposure", &mut exposure),
    ] {
        asked[0].1 = report.title.clone();
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
    // Every chain entry and the manifest it commits (the links from 1 to the head), and the data
    // objects of the runs the reports read.
    let entries = chain_entries(store).await?;
    let mut sequence_of: BTreeMap<&str, u64> = BTreeMap::new();
    let used_manifests: std::collections::BTreeSet<&str> = used
        .iter()
        .filter_map(|r| r.manifest_key.as_deref())
        .collect();
    for (sequence, (bytes, entry)) in &entries {
        files.add(format!("store/{}", chain_key(*sequence)), bytes.clone());
        sequence_of.insert(entry.manifest_key.as_str(), *sequence);
        let key = &entry.manifest_key;
        let manifest = match store.get_opt(key).await? {
            Some(m) => m,
            // Gone: verify named it, and only --pack-damaged gets here.
            None => continue,
        };
        if sha256_hex(&manifest) != entry.manifest_sha256 && !request.pack_damaged {
            return Err(QueryError::Damaged {
                store: store.url().to_string(),
                what: format!("manifest {key} no longer hashes to its chain entry"),
            });
        }
        if request.with_data && used_manifests.contains(key.as_str()) {
            let listed: serde_json::Value = serde_json::from_slice(&manifest).map_err(engine)?;
            for object in listed["objects"].as_array().into_iter().flatten() {
                if let Some(data_key) = object["key"].as_str() {
                    let bytes = store.get(data_key).await?;
                    files.add(format!("store/{data_key}"), bytes.to_vec());
                }
            }
        }
        files.add(format!("store/{key}"), manifest.to_vec());
    }
    let mut runs_csv = String::from(
        "run_id,account_id,region,snapshot_time,finished_at,manifest_key,manifest_sha256,chain_sequence\n",
    );
    for run in &used {
        let (key, sha, seq) = match run
            .manifest_key
            .as_deref()
            .and_then(|k| sequence_of.get(k))
            .and_then(|seq| entries.get(seq).map(|e| (seq, &e.1)))
        {
            Some((seq, entry)) => (
                entry.manifest_key.clone(),
                entry.manifest_sha256.clone(),
                seq.to_string(),
            ),
            None => Default::default(),
        };
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

    // The newest entry packed (a commit after verify may have added one: the pack ends there).
    let head = entries.last_key_value().map_or_else(
        || "none".to_string(),
        |(seq, (bytes, _))| format!("{seq}:{}", sha256_hex(bytes)),
    );
    files.add("verify.txt", verified.lines(store.url()).join("\n") + "\n");
    if let (Some(text), Some(source)) = (request.policy_text, &request.policy.source) {
        files.add(
            format!("judgments/policy/{}", file_name(&source.path)),
            text,
        );
    }
    if let (Some(text), Some(source)) = (request.waivers_text, &request.waivers.source) {
        files.add(
            format!("judgments/waivers/{}", file_name(&source.path)),
            text,
        );
    }
    if let (Some(text), Some(source)) = (request.kev_text, &request.kev.source) {
        files.add(format!("judgments/kev/{}", file_name(&source.path)), text);
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
        head,
    })
}

fn micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The last component of a path as given on the command line.
fn file_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned())
}
