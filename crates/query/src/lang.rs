//! The language of human-facing report text: titles, headings, column headers, chart labels,
//! sheet names and the collect summary. Machine formats (CSV, JSON, JSON lines) never change:
//! their column names are a contract, and so are cell values, which stay the defined terms of
//! docs/semantics.md in every language.
//!
//! Every phrase lives here, once per language, so that a new phrase cannot be forgotten in one
//! language: the `match` on `Lang` in each function makes the compiler ask for both.

use crate::QueryError;
use patchtrail_model::{RunCounts, RunManifest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ja,
}

impl Lang {
    /// `--lang en|ja`.
    pub fn parse(s: &str) -> Result<Lang, QueryError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" | "english" => Ok(Lang::En),
            "ja" | "jp" | "japanese" => Ok(Lang::Ja),
            other => Err(QueryError::BadInput {
                input: format!("--lang {other}"),
                fix: "use en or ja".into(),
            }),
        }
    }

    /// The language when `--lang` is not given: `PATCHTRAIL_LANG` (which must be en or ja), else
    /// the locale (`LC_ALL`, `LC_MESSAGES`, `LANG`, the first one set), Japanese for `ja…`,
    /// English otherwise.
    pub fn from_env() -> Result<Lang, QueryError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var("PATCHTRAIL_LANG") {
            return Lang::parse(&v).map_err(|_| QueryError::BadInput {
                input: format!("PATCHTRAIL_LANG={v}"),
                fix: "set it to en or ja, or unset it".into(),
            });
        }
        let locale = var("LC_ALL")
            .or_else(|| var("LC_MESSAGES"))
            .or_else(|| var("LANG"));
        Ok(match locale {
            Some(l) if l.to_ascii_lowercase().starts_with("ja") => Lang::Ja,
            _ => Lang::En,
        })
    }

    /// The HTML `lang` attribute.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    fn pick(self, en: &'static str, ja: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }

    /// The header of a column (and the label of a compliance class in charts).
    pub fn column(self, name: &str) -> String {
        if self == Lang::En {
            return name.to_string();
        }
        let ja = match name {
            "account_id" => "アカウント ID",
            "region" => "リージョン",
            "instance_id" => "インスタンス ID",
            "name" => "名前",
            "ec2_state" => "EC2 の状態",
            "platform" => "プラットフォーム",
            "node_type" => "ノード種別",
            "platform_name" => "OS",
            "platform_version" => "OS バージョン",
            "ping_status" => "エージェント状態",
            "last_ping_time" => "最終応答日時",
            "agent_version" => "エージェント バージョン",
            "unmanaged_reason" => "管理対象外の理由",
            "hybrid" => "ハイブリッド",
            "agent_offline" => "エージェント応答なし",
            "regions" => "リージョン数",
            "last_scan_time" => "最終スキャン日時",
            "scan_age_days" => "スキャン経過日数",
            "installed" => "適用済み",
            "pending_reboot" => "再起動待ち",
            "rejected" => "拒否済み",
            "missing" => "未適用",
            "failed" => "失敗",
            "not_applicable" => "対象外",
            "available_security_update" => "利用可能なセキュリティ更新",
            "other" => "その他",
            "missing_critical" => "未適用（緊急）",
            "missing_security" => "未適用（セキュリティ）",
            "compliance" => "準拠状況",
            "aws_compliance" => "AWS の判定",
            "agrees_with_aws" => "AWS の判定と一致",
            "disagree_with_aws" => "AWS の判定と不一致",
            "outcome" => "収集結果",
            "error_code" => "エラーコード",
            "snapshot_time" => "スナップショット日時",
            "run_id" => "実行 ID",
            "instances" => "インスタンス数",
            "running" => "実行中",
            "stopped" => "停止中",
            "compliant" => "準拠",
            "non_compliant" => "非準拠",
            "unknown" => "不明",
            "unmanaged" => "管理対象外",
            "error" => "エラー",
            "severity_level" => "重要度",
            "kb_id" => "パッチ ID",
            "title" => "タイトル",
            "severity" => "重要度（AWS の値）",
            "classification" => "分類",
            "change" => "変化",
            "count" => "件数",
            "from_state" => "変更前の状態",
            "to_state" => "変更後の状態",
            "from_version" => "変更前のバージョン",
            "to_version" => "変更後のバージョン",
            "from_last_scan" => "変更前の最終スキャン",
            "to_last_scan" => "変更後の最終スキャン",
            "compliant_instances" => "準拠インスタンス",
            "noncompliant_instances" => "非準拠インスタンス",
            "unknown_instances" => "不明インスタンス",
            "unmanaged_instances" => "管理対象外インスタンス",
            "error_instances" => "エラーインスタンス",
            "latest_state" => "最新の状態",
            "latest_snapshot" => "最新のスナップショット",
            "first_seen" => "初出",
            "first_seen_missing" => "初めて未適用",
            "first_seen_installed" => "初めて適用済み",
            "cve_ids" => "CVE ID",
            "cve_id" => "CVE ID",
            "last_seen" => "最終確認",
            "previous_snapshot" => "直前のスナップショット",
            "resolved_at" => "解消日時",
            "resolution" => "解消の内容",
            "days_open" => "未解消日数",
            "days_open_min" => "未解消日数（下限）",
            "days_open_max" => "未解消日数（上限）",
            "limit_days" => "期限（日）",
            "status" => "判定",
            "waived_by" => "例外承認",
            "expired_waiver" => "期限切れの例外",
            "waived" => "例外承認済み",
            "first_seen_exposed" => "初めて露出",
            "last_seen_exposed" => "最後に露出",
            "fixed_at" => "修正日時",
            "days_exposed" => "露出日数",
            "findings" => "検出件数",
            "instance_days" => "インスタンス日数",
            "still_exposed" => "露出中のインスタンス",
            "open" => "未解消",
            "reason" => "理由",
            "approver" => "承認者",
            "expires" => "有効期限",
            "state" => "状態",
            "instance" => "インスタンス",
            "tag" => "タグ",
            "kb" => "パッチ ID",
            "cve" => "CVE",
            "id" => "ID",
            "breached" => "期限超過（未解消）",
            "fixed_late" => "期限後に修正",
            "fixed_in_time" => "期限内に修正",
            "month" => "月",
            "fixed" => "修正件数",
            "median_days" => "日数（中央値）",
            "p90_days" => "日数（90 パーセンタイル）",
            "resolved_other" => "その他の解消",
            "item" => "項目",
            "value" => "値",
            "source" => "由来",
            "manifest_key" => "マニフェスト",
            "manifest_sha256" => "マニフェストの SHA-256",
            "configuration" => "収集の設定",
            "tool" => "ツール",
            "finished_at" => "収集完了日時",
            _ => return name.to_string(),
        };
        ja.to_string()
    }

    /// The label of a value in a chart: compliance classes, severity levels and change names.
    /// (Table cells keep the value itself: it is the defined term of docs/semantics.md.)
    pub fn value(self, value: &str) -> String {
        if self == Lang::En {
            return value.to_string();
        }
        let ja = match value {
            "critical" => "緊急",
            "high" => "重要",
            "medium" => "中",
            "low" => "低",
            "unspecified" => "未指定",
            "newly_missing" => "新たに未適用",
            "regressed" => "適用済みから未適用へ",
            "newly_failed" => "新たに失敗",
            "newly_installed" => "新たに適用",
            "installed_pending_reboot" => "適用（再起動待ち）",
            "reboot_completed" => "再起動完了",
            "newly_rejected" => "新たに拒否",
            "became_not_applicable" => "対象外に変化",
            "security_update_available" => "セキュリティ更新あり",
            "state_changed" => "状態の変化",
            "no_longer_reported" => "報告されなくなった",
            "version_changed" => "バージョンの変化",
            "appeared" => "出現",
            "disappeared" => "消失",
            "stopped_reporting" => "報告停止",
            "resumed_reporting" => "報告再開",
            other => return self.column(other),
        };
        ja.to_string()
    }

    /// The heading of a table, and its sheet name in XLSX (at most 31 characters there).
    pub fn table(self, name: &str) -> String {
        if self == Lang::En {
            return name.to_string();
        }
        let ja = match name {
            "instances" => "インスタンス",
            "fleet" => "フリート合計",
            "by_account" => "アカウント別",
            "missing_by_severity" => "重要度別の未適用",
            "top_missing" => "未適用の多いパッチ",
            "changes" => "変化",
            "counts" => "変化の件数",
            "snapshots" => "スナップショット",
            "patch_changes" => "パッチの変化",
            "trend" => "推移",
            "result" => "結果",
            "findings" => "検出",
            "by_scope" => "スコープ別",
            "remediation" => "修正までの日数",
            "open_age" => "未解消の経過日数",
            "waivers" => "例外",
            "exposure" => "露出",
            "cves" => "CVE 別",
            "without_cve_ids" => "CVE ID なし",
            "provenance" => "来歴",
            "runs_used" => "使用した実行",
            _ => return name.to_string(),
        };
        ja.to_string()
    }

    /// " (N rows)" after a table heading.
    pub fn rows(self, n: usize) -> String {
        match self {
            Lang::En => format!(" ({n} rows)"),
            Lang::Ja => format!("（{n} 行）"),
        }
    }

    /// The label of "as of" when no date is given.
    pub fn now(self) -> &'static str {
        self.pick("now", "現在")
    }

    /// The word before a report's notes (§1.5).
    pub fn note(self) -> &'static str {
        self.pick("Note", "注意")
    }

    /// A damaged run a report left out (`--skip-damaged`, §1.5).
    /// A diff between runs of one scope collected under other settings (§6.2).
    pub fn configuration_differs(self, before: &crate::RunInfo, after: &crate::RunInfo) -> String {
        let scope = format!("{}/{}", before.account_id, before.region);
        match self {
            Lang::En => format!(
                "{scope}: the runs compared were collected with different settings ({} in {}; {} in {}): changes may come from the settings, not the fleet",
                before.config_line(),
                before.run_id,
                after.config_line(),
                after.run_id
            ),
            Lang::Ja => format!(
                "{scope}: 比較した実行は収集の設定が異なります（{} は {}、{} は {}）。変化はフリートではなく設定によるものかもしれません",
                before.run_id,
                before.config_line(),
                after.run_id,
                after.config_line()
            ),
        }
    }

    pub fn skipped_damaged(self, what: &str) -> String {
        match self {
            Lang::En => {
                format!("left out as damaged (--skip-damaged), run patchtrail verify: {what}")
            }
            Lang::Ja => format!(
                "破損のため除外しました（--skip-damaged）。patchtrail verify で確認してください: {what}"
            ),
        }
    }

    /// §8.2: how far the report's instant lies past the newest snapshot in force, in days.
    pub fn measured_past_snapshot(self, label: &str, newest: &str, days: f64) -> String {
        match self {
            Lang::En => format!(
                "As of {label}, the newest snapshot in force was taken {newest}, {days:.1} days earlier: \
                 open findings' days_open counts to {label}, past what any snapshot saw; days_open_min \
                 ends at last_seen"
            ),
            Lang::Ja => format!(
                "{label} 時点で有効な最新のスナップショットは {newest}（{days:.1} 日前）です。未解決の検出の \
                 days_open は {label} まで数えており、スナップショットが確認した期間を超えます。days_open_min は \
                 last_seen までです"
            ),
        }
    }

    /// §8.4: a CVE asked for that no finding names.
    pub fn cve_never_named(self, cve: &str, label: &str) -> String {
        match self {
            Lang::En => format!(
                "{cve}: no snapshot in force by {label} names it on an outstanding patch. AWS sends CVE ids \
                 only for Missing and Failed patches, never for Ubuntu, Debian or macOS, and only since \
                 late 2020 (docs/semantics.md §8.4): this is not evidence that no instance was exposed"
            ),
            Lang::Ja => format!(
                "{cve}: {label} までに有効なスナップショットには、未適用のパッチでこの CVE を挙げるものがありません。\
                 AWS は CVE ID を Missing と Failed のパッチにだけ、Ubuntu・Debian・macOS 以外で、2020 年後半以降に\
                 限って返します（docs/semantics.md §8.4）。露出がなかった証拠ではありません"
            ),
        }
    }

    pub fn generated_by(self) -> &'static str {
        self.pick("Generated by patchtrail.", "patchtrail が作成しました。")
    }

    pub fn summary_title(self, label: &str) -> String {
        match self {
            Lang::En => format!("Patch compliance as of {label}"),
            Lang::Ja => format!("{label} 時点のパッチ適用状況"),
        }
    }

    pub fn summary_subtitle(
        self,
        snapshots: &str,
        stale_days: u32,
        platform: Option<&str>,
    ) -> String {
        let mut text = match self {
            Lang::En => format!(
                "Snapshot {snapshots}; a scan older than {stale_days} days counts as unknown"
            ),
            Lang::Ja => format!(
                "スナップショット: {snapshots}。{stale_days} 日より古いスキャンは「不明」(unknown) として扱います"
            ),
        };
        if let Some(p) = platform {
            text.push_str(&match self {
                Lang::En => format!("; only platforms containing \"{p}\""),
                Lang::Ja => format!("。プラットフォームに「{p}」を含むインスタンスのみ"),
            });
        }
        text
    }

    pub fn diff_title(self, from: &str, to: &str) -> String {
        match self {
            Lang::En => format!("Changes from {from} to {to}"),
            Lang::Ja => format!("{from} から {to} までの変化"),
        }
    }

    pub fn diff_subtitle(self, from: &str, to: &str) -> String {
        match self {
            Lang::En => format!("From {from} to {to}"),
            Lang::Ja => format!("変更前: {from} / 変更後: {to}"),
        }
    }

    pub fn history_title(self, subject: &str) -> String {
        match self {
            Lang::En => format!("History of {subject}"),
            Lang::Ja => format!("{subject} の履歴"),
        }
    }

    pub fn snapshot_count(self, n: usize) -> String {
        match self {
            Lang::En => format!("{n} snapshots"),
            Lang::Ja => format!("スナップショット {n} 件"),
        }
    }

    pub fn reporting_instances(self, n: usize) -> String {
        match self {
            Lang::En => format!("{n} instances report it"),
            Lang::Ja => format!("{n} 台のインスタンスが報告"),
        }
    }

    pub fn trend_title(self) -> &'static str {
        self.pick("Compliance trend", "準拠状況の推移")
    }

    pub fn query_title(self) -> &'static str {
        self.pick("Query", "クエリ")
    }

    pub fn dashboard_title(self, label: &str) -> String {
        match self {
            Lang::En => format!("Patch compliance report as of {label}"),
            Lang::Ja => format!("{label} 時点のパッチ適用状況レポート"),
        }
    }

    pub fn chart_by_compliance(self) -> &'static str {
        self.pick("Instances by compliance", "準拠状況別のインスタンス数")
    }

    pub fn chart_missing_by_severity(self) -> &'static str {
        self.pick("Missing patches by severity", "重要度別の未適用パッチ")
    }

    pub fn chart_non_compliant_by_account(self) -> &'static str {
        self.pick(
            "Non-compliant instances by account",
            "アカウント別の非準拠インスタンス数",
        )
    }

    pub fn chart_most_missed(self) -> &'static str {
        self.pick(
            "Most missed patches (instances)",
            "未適用の多いパッチ（インスタンス数）",
        )
    }

    pub fn chart_sla(self) -> &'static str {
        self.pick("Findings by SLA status", "SLA 判定別の検出件数")
    }

    pub fn chart_remediation(self) -> &'static str {
        self.pick(
            "Median days to remediate, by month",
            "月別の修正までの日数（中央値）",
        )
    }

    pub fn chart_exposure(self) -> &'static str {
        self.pick(
            "CVEs by instance-days of exposure",
            "露出したインスタンス日数の多い CVE",
        )
    }

    pub fn sla_title(self, label: &str) -> String {
        match self {
            Lang::En => format!("Patch SLA as of {label}"),
            Lang::Ja => format!("{label} 時点のパッチ適用期限の遵守状況"),
        }
    }

    pub fn exposure_title(self, label: &str, cves: &[String]) -> String {
        let subject = if cves.is_empty() {
            match self {
                Lang::En => "CVEs".to_string(),
                Lang::Ja => "CVE".to_string(),
            }
        } else {
            cves.join(", ")
        };
        match self {
            Lang::En => format!("Exposure to {subject} as of {label}"),
            Lang::Ja => format!("{label} 時点の {subject} への露出"),
        }
    }

    pub fn chart_changes(self) -> &'static str {
        self.pick("Changes by kind", "種類別の変化")
    }

    pub fn chart_over_time(self) -> &'static str {
        self.pick("Compliance over time", "準拠状況の推移")
    }

    pub fn chart_instance_over_time(self) -> &'static str {
        self.pick("Missing and failed patches", "未適用・失敗のパッチ")
    }

    pub fn chart_kb_over_time(self, kb_id: &str) -> String {
        match self {
            Lang::En => format!("{kb_id} across the fleet"),
            Lang::Ja => format!("フリート全体での {kb_id}"),
        }
    }

    pub fn chart_worst_instances(self, n: usize) -> String {
        match self {
            Lang::En => format!("Missing patches per instance (the {n} worst)"),
            Lang::Ja => format!("インスタンス別の未適用パッチ（多い順に {n} 台）"),
        }
    }

    /// `collect`'s closing summary for people: the run, its counts, where it went, and the
    /// first failed instances (`failures`: instance id and error text).
    pub fn collect_summary(
        self,
        m: &RunManifest,
        manifest_key: &str,
        witness: &str,
        store: &str,
        seconds: f64,
        failures: &[(String, String)],
    ) -> String {
        let c = &m.counts;
        let when = m.snapshot_time.format("%Y-%m-%d %H:%M:%S");
        let mut out = match self {
            Lang::En => format!(
                "Committed run {run} ({when} UTC)\n  instances  {} ({} ok, {} unmanaged, {} errors)\n  patches    {} rows from {} pages\n  missing    {} (critical {}, security {}); failed {}\n  duration   {seconds:.1} s\n  written to {store} ({format}), manifest {key}\n  chain head {witness} (keep it elsewhere: `patchtrail verify --expect-head` finds a truncated history)\n",
                c.instances,
                c.managed,
                c.unmanaged,
                c.errors,
                c.patches,
                c.pages,
                c.missing,
                c.missing_critical,
                c.missing_security,
                c.failed,
                run = m.run_id,
                format = m.format,
                key = manifest_key,
            ),
            Lang::Ja => format!(
                "実行 {run} をコミットしました（{when} UTC）\n  インスタンス  {} 台（正常 {}、管理対象外 {}、エラー {}）\n  パッチ        {} 行（{} ページ）\n  未適用        {} 件（緊急 {}、セキュリティ {}）、失敗 {} 件\n  所要時間      {seconds:.1} 秒\n  保存先        {store}（{format}）、マニフェスト {key}\n  チェーン先頭  {witness}（別の場所に控えてください。`patchtrail verify --expect-head` で履歴の切り詰めを検出できます）\n",
                c.instances,
                c.managed,
                c.unmanaged,
                c.errors,
                c.patches,
                c.pages,
                c.missing,
                c.missing_critical,
                c.missing_security,
                c.failed,
                run = m.run_id,
                format = m.format,
                key = manifest_key,
            ),
        };
        for (id, e) in failures.iter().take(10) {
            out.push_str(&match self {
                Lang::En => format!("  failed     {id}: {e}\n"),
                Lang::Ja => format!("  失敗          {id}: {e}\n"),
            });
        }
        if failures.len() > 10 {
            let more = failures.len() - 10;
            out.push_str(&match self {
                Lang::En => {
                    format!("  ... and {more} more failed instances (see the instances table)\n")
                }
                Lang::Ja => format!("  ほか {more} 台が失敗（instances テーブルを参照）\n"),
            });
        }
        out
    }

    /// What a report's `--account`/`--region` filter kept, for its subtitle.
    pub fn scope_note(self, accounts: &[String], regions: &[String]) -> String {
        let mut parts = Vec::new();
        if !accounts.is_empty() {
            parts.push(match self {
                Lang::En => format!("accounts {}", accounts.join(", ")),
                Lang::Ja => format!("アカウント {}", accounts.join("、")),
            });
        }
        if !regions.is_empty() {
            parts.push(match self {
                Lang::En => format!("regions {}", regions.join(", ")),
                Lang::Ja => format!("リージョン {}", regions.join("、")),
            });
        }
        match self {
            Lang::En => format!("only {}", parts.join("; ")),
            Lang::Ja => format!("対象: {}", parts.join("；")),
        }
    }

    /// The closing summary of a collect over several scopes: one line per (account, region),
    /// its run or why it failed.
    pub fn scopes_summary(self, scopes: &[ScopeLine], store: &str, seconds: f64) -> String {
        let ok = scopes.iter().filter(|s| s.outcome.is_ok()).count();
        let mut out = match self {
            Lang::En => format!(
                "Committed {ok} of {} scopes (account, region) to {store} in {seconds:.1} s\n  {:<12}  {:<15} {:>9} {:>8} {:>8} {:>7}  RUN\n",
                scopes.len(),
                "ACCOUNT",
                "REGION",
                "INSTANCES",
                "MISSING",
                "CRITICAL",
                "ERRORS"
            ),
            Lang::Ja => format!(
                "{} スコープ（アカウント、リージョン）のうち {ok} をコミットしました（{store}、{seconds:.1} 秒）\n  {:<12}  {:<15} {:>9} {:>8} {:>8} {:>7}  実行\n",
                scopes.len(),
                "アカウント",
                "リージョン",
                "台数",
                "未適用",
                "緊急",
                "エラー"
            ),
        };
        for s in scopes {
            let region = s.region.as_deref().unwrap_or("-");
            out.push_str(&match &s.outcome {
                Ok((run, c)) => format!(
                    "  {:<12}  {:<15} {:>9} {:>8} {:>8} {:>7}  {run}\n",
                    s.account_id, region, c.instances, c.missing, c.missing_critical, c.errors
                ),
                Err(e) => match self {
                    Lang::En => format!("  {:<12}  {region:<15} failed: {e}\n", s.account_id),
                    Lang::Ja => format!("  {:<12}  {region:<15} 失敗: {e}\n", s.account_id),
                },
            });
        }
        out
    }
}

/// One scope's line of [`Lang::scopes_summary`]: its committed run and counts, or its error.
pub struct ScopeLine {
    pub account_id: String,
    /// None when the whole account failed (its role could not be assumed).
    pub region: Option<String>,
    pub outcome: Result<(String, RunCounts), String>,
}

#[cfg(test)]
mod tests {
    use super::Lang;

    #[test]
    fn english_is_the_identity_and_japanese_covers_every_column() {
        assert_eq!(Lang::En.column("missing_critical"), "missing_critical");
        assert_eq!(Lang::Ja.column("missing"), "未適用");
        assert_eq!(Lang::Ja.value("non_compliant"), "非準拠");
        assert_eq!(Lang::Ja.value("newly_missing"), "新たに未適用");
        // An unknown name falls back to itself rather than to nothing.
        assert_eq!(Lang::Ja.column("tags"), "tags");
        assert!(Lang::parse("fr").is_err());
        assert_eq!(Lang::parse("JA").ok(), Some(Lang::Ja));
    }
}
