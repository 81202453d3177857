//! The command line (clap): names agreed in DESIGN.md; scripts and docs rely on them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use patchtrail_query::Lang;
use std::net::SocketAddr;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (AWS or storage trouble that retrying may fix)
  2  bad input (arguments, --input-json, --store, region); nothing was written
  3  the run was committed, but some instances could not be collected (see the summary)
  4  AWS credentials or permissions are missing or rejected
  5  verify found missing, altered or uncommitted objects, or a broken manifest chain; a report met a damaged store
  6  collect stopped at --time-limit: the run is suspended, not history yet (--resume continues it)";

/// `--time-limit`: a whole number of seconds, minutes or hours (`90s`, `50m`, `2h`).
fn parse_time_limit(text: &str) -> Result<std::time::Duration, String> {
    let fix = || format!("'{text}': give a whole number with s, m or h, such as 50m or 2h");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(fix)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(fix)?;
    let per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        _ => return Err(fix()),
    };
    let seconds = n.checked_mul(per_unit).ok_or_else(fix)?;
    Ok(std::time::Duration::from_secs(seconds))
}

/// `--version`: the package version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PATCHTRAIL_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "patchtrail", version = VERSION, about = "Audit-grade, queryable history of the patch compliance of an AWS fleet", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: text for people, json for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log detail (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Language of text for people (report titles, headers, charts, sheets, the collect
    /// summary): en or ja [default: PATCHTRAIL_LANG, else ja under a ja_* locale, else en].
    /// CSV, JSON and JSON lines keep their English column names.
    #[arg(long, global = true, value_name = "LANG")]
    pub lang: Option<String>,
}

/// How a command speaks to people: log format, quietness and language.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub log_format: LogFormat,
    pub quiet: bool,
    pub lang: Lang,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Snapshot the tagged fleet's patch state into the store (the seed workflow, in Rust).
    Collect(CollectArgs),
    /// Serve a simulated AWS fleet (EC2, SSM, STS wire protocols) on a loopback port.
    Sim(SimArgs),
    /// Simulate a fleet, collect several weekly snapshots into ./patchtrail-demo, and report.
    Demo(DemoArgs),
    /// Reports from the history: state as of a date, changes, timelines, trends.
    Report(ReportArgs),
    /// Ad-hoc SQL over the tables patches, instances and runs.
    Sql(SqlArgs),
    /// Check every committed run against its manifest, and the manifest hash chain.
    Verify(VerifyArgs),
    /// One zip for an auditor: summary, SLA and exposure reports as of a date (HTML, XLSX, CSV),
    /// the manifests, chain entries and data they rest on, the verify result, and a README that
    /// checks every hash with sha256sum and jq, without patchtrail.
    Evidence(EvidenceArgs),
    /// Print CREATE EXTERNAL TABLE statements for Athena over the store's layout.
    AthenaDdl(AthenaDdlArgs),
    /// Preflight: who you are, whether each permission and the store work, the fleet, an estimate.
    Doctor(DoctorArgs),
    /// Commit snapshots given as JSON lines (one run per line): backfill history from another source.
    Import(ImportArgs),
    /// The findings as of a date where security teams triage: OCSF 1.1.0 for Amazon Security
    /// Lake and SIEMs, ASFF into AWS Security Hub (docs/semantics.md §9).
    Export(ExportArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): patchtrail man > patchtrail.1
    Man,
    /// Run collect on an EventBridge Scheduler expression until SIGTERM (for servers, containers, systemd).
    Schedule(ScheduleArgs),
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// When to collect: rate(7 days), cron(0 9 ? * MON *) or at(2026-12-01T09:00:00).
    /// A rate runs once at start, then every interval; runs never overlap.
    #[arg(long, value_name = "EXPR", required_unless_present = "explain")]
    pub every: Option<String>,
    /// Print the next 5 run times of EXPR and exit.
    #[arg(long, value_name = "EXPR", conflicts_with = "every")]
    pub explain: Option<String>,
    /// Time zone of cron and at expressions (IANA name).
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    #[command(flatten)]
    pub collect: CollectArgs,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format [default: table on a terminal, csv otherwise].
    #[arg(long, value_parser = ["table", "csv", "json", "jsonl", "markdown", "html", "xlsx"])]
    pub format: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
    /// The table csv, json and jsonl carry [default: the report's main table], e.g. fleet.
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,
}

#[derive(Debug, Args)]
pub struct StaleArg {
    /// A last scan older than this many days makes an instance's compliance unknown
    /// (docs/semantics.md §4.1).
    #[arg(long, default_value_t = patchtrail_query::DEFAULT_STALE_DAYS)]
    pub stale_days: u32,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub export: ExportKind,
}

#[derive(Debug, Subcommand)]
pub enum ExportKind {
    /// OCSF 1.1.0 events: Vulnerability Finding (2002) per finding that names CVEs, Compliance
    /// Finding (2003) per finding with its SLA verdict; Parquet in Amazon Security Lake's
    /// custom-source layout, or JSON lines.
    Ocsf {
        /// The folder to write (created; it must not hold files of an earlier export with the
        /// same as-of).
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
        /// parquet: <class>/region=<r>/accountId=<a>/eventDay=<YYYYMMDD>/*.parquet (one source
        /// per class); jsonl: one <class>.jsonl per class.
        #[arg(long, value_enum, default_value = "parquet")]
        format: OcsfFormat,
        /// SLA policy (TOML) behind the compliance verdicts [default: docs/semantics.md §8.3].
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
        #[command(flatten)]
        findings: FindingsArgs,
    },
    /// ASFF findings into AWS Security Hub (BatchImportFindings), each from the account it
    /// names: a weekly export updates the findings the last one imported and archives those
    /// that closed, with stable ids.
    SecurityHub {
        /// Write the BatchImportFindings request bodies into DIR (batch-<account>-<region>-<n>.json)
        /// instead of sending them.
        #[arg(long, value_name = "DIR")]
        dry_run: Option<std::path::PathBuf>,
        /// Leave out findings that closed more than this many days before the as-of date
        /// (Security Hub deletes archived findings after 90 days).
        #[arg(long, default_value_t = 90)]
        closed_days: u32,
        /// SLA policy (TOML) behind the compliance status [default: docs/semantics.md §8.3].
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
        /// Role to assume in each account of the findings but the caller's own (Security Hub
        /// takes a finding only from the account it names), e.g. PatchtrailRead.
        #[arg(long, value_name = "NAME")]
        role_name: Option<String>,
        /// External id the member role's trust policy requires.
        #[arg(long, value_name = "ID", requires = "role_name")]
        external_id: Option<String>,
        /// Session name of the assumed roles.
        #[arg(long, value_name = "NAME", default_value = patchtrail_collect::DEFAULT_SESSION_NAME)]
        role_session_name: String,
        #[command(flatten)]
        findings: FindingsArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OcsfFormat {
    Parquet,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub report: ReportKind,
}

#[derive(Debug, Args)]
pub struct EvidenceArgs {
    /// The zip file to write (it must not exist).
    #[arg(long, value_name = "FILE.zip")]
    pub out: std::path::PathBuf,
    /// SLA policy (TOML) the SLA report applies [default: docs/semantics.md §8.3].
    #[arg(long, value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,
    /// Leave out the data objects (Parquet/JSON) the manifests list: a smaller pack whose
    /// reports can be checked against the manifests but not against the rows.
    #[arg(long)]
    pub without_data: bool,
    /// Pack a store that `patchtrail verify` finds damaged, with the damage named on the pack's
    /// first page (README.txt), instead of refusing (exit 5).
    #[arg(long)]
    pub pack_damaged: bool,
    /// A chain head witness (`<sequence>:<sha256>`) recorded earlier, e.g. by the last audit's
    /// pack or `patchtrail verify`: the pack is refused unless the chain still holds it, and its
    /// README names it for the auditor's own check.
    #[arg(long, value_name = "WITNESS")]
    pub expect_head: Option<patchtrail_store::Witness>,
    #[command(flatten)]
    pub findings: FindingsArgs,
}

/// What the reports over findings (§8) and the evidence pack take besides their own flags.
#[derive(Debug, Args)]
pub struct FindingsArgs {
    /// Count snapshots in force by the end of this date (YYYY-MM-DD) [default: now].
    #[arg(long)]
    pub as_of: Option<String>,
    #[command(flatten)]
    pub judgments: JudgmentArgs,
    #[command(flatten)]
    pub time: TimeArgs,
    #[command(flatten)]
    pub stale: StaleArg,
    #[command(flatten)]
    pub scope: ScopeFilterArgs,
    #[command(flatten)]
    pub store: StoreAccess,
}

#[derive(Debug, Args)]
pub struct JudgmentArgs {
    /// Accepted risks (TOML [[waiver]] entries, docs/semantics.md §8.6), applied at report time:
    /// waived findings are counted apart, and the report names the file and its SHA-256.
    #[arg(long, value_name = "FILE")]
    pub waivers: Option<std::path::PathBuf>,
    /// CISA's Known Exploited Vulnerabilities catalog (its JSON feed, a file you keep): a finding
    /// exposed to a listed CVE is due by the entry's dueDate when that is earlier than the policy
    /// (docs/semantics.md §8.3); the report names the file, its SHA-256 and catalog version.
    #[arg(long, value_name = "FILE")]
    pub kev: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct TimeArgs {
    /// Time zone in which dates end (IANA name).
    #[arg(long, default_value = "UTC")]
    pub tz: String,
}

#[derive(Debug, Subcommand)]
pub enum ReportKind {
    /// Per instance: state, last scan, installed/missing/failed counts, compliance; plus fleet totals.
    Summary {
        /// The latest snapshot at or before the end of this date (YYYY-MM-DD) [default: now].
        #[arg(long)]
        as_of: Option<String>,
        /// Only instances whose platform contains this text, ignoring case: EC2's platform
        /// (`Windows`, `Red Hat Enterprise Linux`) or the OS the SSM agent reports (`Ubuntu`).
        #[arg(long)]
        platform: Option<String>,
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        stale: StaleArg,
        #[command(flatten)]
        scope: ScopeFilterArgs,
        #[command(flatten)]
        store: StoreAccess,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every change between two dates: patches newly missing, installed, regressed, failed, rebooted, version changes;
    /// instances that appeared, disappeared, stopped or resumed reporting.
    Diff {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        stale: StaleArg,
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        scope: ScopeFilterArgs,
        #[command(flatten)]
        store: StoreAccess,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The timeline of one instance (--instance), of one patch across the fleet (--kb), or of
    /// the instances exposed to one CVE (--cve).
    History {
        #[arg(long, required_unless_present_any = ["kb", "cve"], conflicts_with_all = ["kb", "cve"])]
        instance: Option<String>,
        #[arg(long, conflicts_with = "cve")]
        kb: Option<String>,
        /// A CVE id, e.g. CVE-2024-38063: per snapshot, the instances with an outstanding patch
        /// whose CVEIds name it (docs/semantics.md §8.4).
        #[arg(long)]
        cve: Option<String>,
        #[command(flatten)]
        stale: StaleArg,
        #[command(flatten)]
        scope: ScopeFilterArgs,
        #[command(flatten)]
        store: StoreAccess,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Patch SLA (docs/semantics.md §8.3): every finding (a patch outstanding on an instance) with
    /// the days it stayed open against the policy's limit: breached, fixed late, open, fixed in time.
    Sla {
        /// SLA policy (TOML: [severity] and [classification] tables of name = days)
        /// [default: critical/high 30, medium 90, low/unspecified 180, CriticalUpdates 30].
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
        #[command(flatten)]
        findings: FindingsArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// CVE exposure (docs/semantics.md §8.4): which instances were exposed to which CVEs, from when
    /// to when, and CVEs ranked by instance-days of exposure.
    Exposure {
        /// Only these CVE ids (comma-separated) [default: every CVE the history names].
        #[arg(long, value_name = "CVE", value_delimiter = ',')]
        cve: Vec<String>,
        #[command(flatten)]
        findings: FindingsArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Per snapshot: compliant and non-compliant instances, missing critical and security patches.
    Trend {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        stale: StaleArg,
        #[command(flatten)]
        scope: ScopeFilterArgs,
        #[command(flatten)]
        store: StoreAccess,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Args)]
#[command(after_help = "Each line is one run, committed in file order:\n  \
{\"snapshot_time\":\"2026-03-01T06:00:00Z\",\"account_id\":\"123456789012\",\"region\":\"us-east-1\",\n   \
\"instances\":[{\"instance_id\":\"i-0123456789abcdef0\",\"name\":\"web-1\",\"last_scan_time\":\"2026-02-28T03:00:00Z\",\n     \
\"patches\":[{\"kb_id\":\"KB5034441\",\"title\":\"…\",\"classification\":\"SecurityUpdates\",\"severity\":\"Critical\",\n                 \
\"state\":\"Missing\",\"installed_time\":null,\"cve_ids\":null}]}]}\n\
Instance fields are the instances table's columns (README, Data layout); absent ones are null.\n\
A patch may give \"release_date\" (AWS's ReleaseDate, for SLA limits counted from release, docs/semantics.md §8.3).\n\
A run may give \"finished_at\" (when it was complete; default: its snapshot_time). Times are kept to the microsecond. \
Refused, with nothing written: an instance twice in a run, a kb_id twice for one instance, a last_scan_time after the run's finished_at (docs/semantics.md §1.4, §1.6).")]
pub struct ImportArgs {
    /// JSON-lines file of runs, or - for stdin.
    #[arg(required_unless_present = "from_seed")]
    pub file: Option<std::path::PathBuf>,
    /// Instead of a file: every snapshot the seed's own Step Functions workflow wrote under this
    /// location (s3://bucket/path, or a folder), one run per day partition, keeping its dates;
    /// days already imported are skipped. Needs --seed-account and --seed-region.
    #[arg(long, value_name = "URL", conflicts_with = "file", requires_all = ["seed_account", "seed_region"])]
    pub from_seed: Option<String>,
    /// The account the seed's workflow collected (it does not record one).
    #[arg(long, value_name = "ID")]
    pub seed_account: Option<String>,
    /// The region the seed's workflow collected.
    #[arg(long, value_name = "REGION")]
    pub seed_region: Option<String>,
    #[command(flatten)]
    pub store: StoreAccess,
    /// On-disk format of the runs written.
    #[arg(long, default_value = "parquet", value_parser = ["parquet", "jsonl", "seed"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT state, count(*) FROM patches GROUP BY state".
    pub query: String,
    #[command(flatten)]
    pub store: StoreAccess,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreAccess,
    /// Also check that the chain still holds this head witness (`<sequence>:<sha256>`, printed
    /// by every commit and by verify): finds a chain truncated together with its head hint.
    #[arg(long, value_name = "WITNESS")]
    pub expect_head: Option<patchtrail_store::Witness>,
    /// Set aside what a crash can leave at the chain's end (an empty or unreadable newest
    /// entry, which committed nothing), then verify. Run it when no collect is writing.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Args)]
pub struct AthenaDdlArgs {
    /// The S3 location the tables point at [default: --store if it is s3://].
    #[arg(long, env = "PATCHTRAIL_STORE")]
    pub store: Option<String>,
    /// The format the store was written in: parquet (default), jsonl or seed.
    #[arg(long, default_value = "parquet", value_parser = ["parquet", "jsonl", "seed"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// AWS region of the fleet [default: from AWS_REGION or the profile].
    #[arg(long)]
    pub region: Option<String>,
    /// The tag key that selects instances [default: CheckPatch].
    #[arg(long, value_name = "KEY")]
    pub tag_key: Option<String>,
    /// A KEY=VALUE tag that selects instances (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub tag: Vec<String>,
    /// Requests per second SSM allows, as the duration estimate assumes. A collect starts at 20
    /// and speeds up while SSM answers without throttling, so 20 gives an upper figure; pass
    /// the rate a past collect reached (its summary says) for a closer one.
    #[arg(long, value_name = "TPS", default_value_t = 20.0)]
    pub assume_tps: f64,
    /// text for people, json for scripts.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

#[derive(Debug, Clone, Args)]
pub struct StoreArg {
    /// Where the history lives: a folder, file:///path, s3://bucket/prefix or memory://.
    /// [default: ./patchtrail-data]
    #[arg(long, env = "PATCHTRAIL_STORE")]
    pub store: Option<String>,
}

/// `--store` and, for a store on S3, its bucket's region.
#[derive(Debug, Args)]
pub struct StoreAccess {
    #[command(flatten)]
    pub store: StoreArg,
    /// AWS region of an S3 store's bucket [default: looked up from the bucket itself].
    #[arg(long = "bucket-region", value_name = "REGION")]
    pub region: Option<String>,
}

/// Which scopes a report covers: runs of these accounts and regions (all by default).
#[derive(Debug, Default, Args)]
pub struct ScopeFilterArgs {
    /// Only these accounts (comma-separated or repeated 12-digit ids).
    #[arg(long = "account", value_delimiter = ',', value_name = "ID")]
    pub accounts: Vec<String>,
    /// Only these regions (comma-separated or repeated).
    #[arg(long = "region", value_delimiter = ',', value_name = "REGION")]
    pub regions: Vec<String>,
    /// Report as if damaged runs (a missing object, a manifest changed after it committed) had
    /// never committed, and say so in the output, instead of refusing (exit 5).
    #[arg(long)]
    pub skip_damaged: bool,
}

impl ScopeFilterArgs {
    pub fn damage(&self) -> patchtrail_query::Damage {
        if self.skip_damaged {
            patchtrail_query::Damage::Skip
        } else {
            patchtrail_query::Damage::Refuse
        }
    }

    pub fn filter(&self) -> patchtrail_query::ScopeFilter {
        patchtrail_query::ScopeFilter {
            accounts: self.accounts.iter().map(|a| a.trim().to_string()).collect(),
            regions: self.regions.iter().map(|r| r.trim().to_string()).collect(),
        }
    }
}

impl StoreArg {
    pub const DEFAULT: &str = "./patchtrail-data";

    pub fn url(&self) -> &str {
        self.store.as_deref().unwrap_or(StoreArg::DEFAULT)
    }
}

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct CollectArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// On-disk format: parquet (default), jsonl, or seed (the seed workflow's exact keys and bodies).
    #[arg(long, value_parser = ["parquet", "jsonl", "seed"])]
    pub format: Option<String>,
    /// Collect instances carrying this tag key, whatever its value [default: CheckPatch].
    #[arg(long, value_name = "KEY")]
    pub tag_key: Option<String>,
    /// Collect instances whose tag KEY has value VALUE (repeat for several values of one key).
    #[arg(long, value_name = "KEY=VALUE")]
    pub tag: Vec<String>,
    /// Keep only patches of this classification (repeatable or comma-separated)
    /// [default: Security, CriticalUpdates, SecurityUpdates].
    #[arg(long, value_name = "CLASSIFICATION")]
    pub classification: Vec<String>,
    /// Keep patches of every classification.
    #[arg(long)]
    pub all_classifications: bool,
    /// AWS region [default: from AWS_REGION or the profile].
    #[arg(long)]
    pub region: Option<String>,
    /// Most instances collected at once. Rarely needed: the request rate tunes itself to what
    /// the service allows, and as many instances are under way as that rate needs.
    #[arg(long, default_value_t = patchtrail_collect::DEFAULT_CONCURRENCY as u32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Ceiling on requests per second, per API (the rate tunes itself below it).
    #[arg(long, value_name = "TPS")]
    pub max_tps: Option<f64>,
    /// Attempts per AWS call against network and service faults, the first included
    /// (throttling is answered by slowing down, not counted).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub max_attempts: u32,
    /// The seed's EventBridge Scheduler input, e.g. '{"s3_bucket":"my-bucket/","s3_path":"patches"}'.
    /// Writes where the seed wrote, in the seed's format unless --format says otherwise.
    #[arg(long, value_name = "JSON", conflicts_with_all = ["tag_key", "tag", "classification", "all_classifications"])]
    pub input_json: Option<String>,
    /// List the instances that would be collected, and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave out hybrid (`mi-`) nodes: on-premises and other-cloud servers registered with SSM
    /// and carrying the tag, collected alongside EC2 by default.
    #[arg(long)]
    pub no_hybrid: bool,
    /// Stop after this long (e.g. 50m, 2h, 90s) and suspend the run: what is collected so far
    /// is kept, and --resume RUN_ID continues it later (exit 6). A stop by Ctrl-C then suspends
    /// the run too.
    #[arg(long, value_name = "DURATION", value_parser = parse_time_limit)]
    pub time_limit: Option<std::time::Duration>,
    /// Continue a suspended run (stopped by --time-limit or by a Lambda deadline) where it
    /// stopped; it commits once, when complete. The run keeps its own snapshot time, tag and
    /// classifications.
    #[arg(long, value_name = "RUN_ID", conflicts_with = "dry_run")]
    pub resume: Option<String>,
    #[command(flatten)]
    pub scopes: ScopeArgs,
}

/// Many accounts and regions in one command: each (account, region) is collected with its own
/// rate budget and committed as its own run.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Accounts and regions")]
pub struct ScopeArgs {
    /// Collect these accounts (comma-separated 12-digit ids); others than the caller's own are
    /// read through --role-name.
    #[arg(long, value_delimiter = ',', value_name = "ID,...", conflicts_with_all = ["accounts_file", "organization"])]
    pub accounts: Vec<String>,
    /// Collect the accounts listed in this file (one id per line, # comments).
    #[arg(long, value_name = "FILE", conflicts_with = "organization")]
    pub accounts_file: Option<std::path::PathBuf>,
    /// Collect every ACTIVE account of the caller's organization (organizations:ListAccounts,
    /// from the management or a delegated administrator account).
    #[arg(long)]
    pub organization: bool,
    /// Role to assume in each account but the caller's own, e.g. PatchtrailRead
    /// (deploy/patchtrail-member-role.yaml creates it).
    #[arg(long, value_name = "NAME")]
    pub role_name: Option<String>,
    /// External id the member role's trust policy requires.
    #[arg(long, value_name = "ID", requires = "role_name")]
    pub external_id: Option<String>,
    /// Session name of the assumed roles, shown in the members' CloudTrail.
    #[arg(long, value_name = "NAME", default_value = patchtrail_collect::DEFAULT_SESSION_NAME)]
    pub role_session_name: String,
    /// Collect these regions (comma-separated), or `all`: the regions enabled for each account
    /// [default: --region].
    #[arg(long, value_delimiter = ',', value_name = "REGION,...|all")]
    pub regions: Vec<String>,
    /// Scopes (account, region) collected at once.
    #[arg(long, default_value_t = patchtrail_collect::DEFAULT_MAX_SCOPES as u32, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max_scopes: u32,
}

impl Default for ScopeArgs {
    /// The caller's own account in its configured region.
    fn default() -> Self {
        ScopeArgs {
            accounts: Vec::new(),
            accounts_file: None,
            organization: false,
            role_name: None,
            external_id: None,
            role_session_name: patchtrail_collect::DEFAULT_SESSION_NAME.into(),
            regions: Vec::new(),
            max_scopes: patchtrail_collect::DEFAULT_MAX_SCOPES as u32,
        }
    }
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Size of the simulated EC2 fleet.
    #[arg(long, default_value_t = 200)]
    pub instances: u64,
    /// Hybrid (mi-) nodes registered with SSM besides the EC2 fleet: on-premises servers that
    /// only DescribeInstanceInformation lists.
    #[arg(long, default_value_t = 0)]
    pub hybrid: u64,
    /// Seed of the synthetic fleet: the same seed and date give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated date (YYYY-MM-DD); change it while running with PUT /_sim/date.
    #[arg(long, default_value = "2026-11-02")]
    pub date: chrono::NaiveDate,
    /// Token-bucket rate per SSM API (requests per second); past it: ThrottlingException.
    #[arg(long)]
    pub ssm_tps: Option<f64>,
    /// Token-bucket rate for EC2 DescribeInstances; past it: RequestLimitExceeded (503).
    #[arg(long)]
    pub ec2_tps: Option<f64>,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered with a seeded 500/503 fault (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Share of instances SSM does not manage (InvalidInstanceId).
    #[arg(long, default_value_t = 0.03)]
    pub unmanaged_rate: f64,
    /// Speak the API model's enums (INSTALLED, Windows) instead of the real wire's quirks.
    #[arg(long)]
    pub model_enums: bool,
    /// Account id the simulator answers for.
    #[arg(long, default_value = "123456789012")]
    pub account_id: String,
    /// Answer this IAM action (e.g. ssm:DescribeInstancePatchStates) with the service's
    /// access-denied error (repeatable).
    #[arg(long, value_name = "SERVICE:ACTION")]
    pub deny_action: Vec<String>,
    /// NextTokens older than this many milliseconds are refused as invalid (InvalidNextToken,
    /// InvalidPaginationToken), as expired tokens are [default: they never expire].
    #[arg(long, value_name = "MS")]
    pub token_ttl_ms: Option<u64>,
    /// Accounts of the simulated organization, --account-id (the management account) included;
    /// the other ids derive from --seed. Collect them with --organization --role-name R.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub accounts: u64,
    /// Regions of every account with a fleet of their own, the ones DescribeRegions lists (other
    /// regions that need no opt-in hold no instances; opt-in ones are not enabled)
    /// [default: one region, answering requests signed for any region].
    #[arg(long, value_delimiter = ',', value_name = "REGION,...")]
    pub regions: Vec<String>,
    /// Refuse sts:AssumeRole into this account with AccessDenied (repeatable).
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub deny_assume: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo history (emptied of earlier demo data first).
    #[arg(long, default_value = "./patchtrail-demo")]
    pub store: String,
    /// Simulated instances.
    #[arg(long, default_value_t = 120)]
    pub instances: u64,
    /// Weekly snapshots to take.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=104))]
    pub weeks: u32,
    /// Date of the last snapshot.
    #[arg(long, default_value = "2026-11-23")]
    pub until: chrono::NaiveDate,
    /// Seed of the simulated fleet.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep patches of every classification (a bigger history, e.g. for benchmarks).
    #[arg(long)]
    pub all_classifications: bool,
}

#[cfg(test)]
mod tests {
    use super::parse_time_limit;
    use std::time::Duration;

    #[test]
    fn time_limits_are_whole_seconds_minutes_or_hours() {
        assert_eq!(parse_time_limit("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_time_limit("50m"), Ok(Duration::from_secs(3_000)));
        assert_eq!(parse_time_limit("2h"), Ok(Duration::from_secs(7_200)));
        for bad in [
            "",
            "m",
            "0m",
            "5",
            "1.5h",
            "5d",
            "-3m",
            "99999999999999999h",
        ] {
            let e = parse_time_limit(bad).expect_err(bad);
            assert!(e.contains("such as 50m or 2h"), "{bad}: {e}");
        }
    }
}
