//! Row encodings: Parquet (through Arrow), JSON lines, and the seed's `{"Patches":[...]}` page.
//!
//! Rows reach Arrow through their serde form (`arrow_json`'s serializer), the same form the JSONL
//! format writes, so the two formats cannot drift apart.

use crate::StoreError;
use arrow_json::ReaderBuilder;
use arrow_schema::SchemaRef;
use chrono::{DateTime, SecondsFormat, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use patchtrail_model::PatchRecord;
use serde::Serialize;
use serde_json::{Map, Value};

fn encode_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Encode {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Arrow batches per row group. Rows are buffered, then turned into a batch through
/// `arrow_json`'s tape, which holds every field of every buffered row at once (measured with
/// heaptrack: ~3 KB a row of the wide `instances` table, ~1 KB a patch row, so 8.5 MB for a batch
/// of 8 Ki patch rows, plus 3 MB for the buffered rows themselves): batches of 1/32 of a row
/// group (2 Ki patch rows, 256 instance rows) keep that transient near 3 MB whatever the table.
const BATCHES_PER_ROW_GROUP: usize = 32;

/// A Parquet file being written in memory, batch by batch.
pub struct ParquetPart<T> {
    schema: SchemaRef,
    writer: ArrowWriter<Vec<u8>>,
    pending: Vec<T>,
    batch_rows: usize,
    rows: u64,
}

/// Rows per Parquet row group of the narrow `patches` table. A row group is encoded in memory
/// until full (its dictionaries and pages: ~8 MB for 64 Ki rows, measured with heaptrack); 32 Ki
/// rows saved 1-2 MiB of a collect's peak but the diff report took 1.24 s instead of 1.06 s
/// (bench/README.md), so 64 Ki it is.
pub const PATCH_ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows per row group of the wide `instances` table (about fifty columns, a row of a few
/// hundred bytes): 8 Ki rows hold about as much in memory as a patches row group does.
pub const INSTANCE_ROW_GROUP_ROWS: usize = 8 * 1024;

impl<T: Serialize> ParquetPart<T> {
    pub fn new(schema: SchemaRef, row_group_rows: usize) -> Result<Self, StoreError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(row_group_rows))
            .set_created_by(format!("patchtrail {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props))
            .map_err(|e| encode_error("parquet", e))?;
        let batch_rows = (row_group_rows / BATCHES_PER_ROW_GROUP).max(1);
        Ok(ParquetPart {
            schema,
            writer,
            pending: Vec::with_capacity(batch_rows),
            batch_rows,
            rows: 0,
        })
    }

    pub fn push(&mut self, row: T) -> Result<(), StoreError> {
        self.pending.push(row);
        self.rows += 1;
        if self.pending.len() >= self.batch_rows {
            self.flush_pending()?;
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn flush_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = rows_to_batch(self.schema.clone(), &self.pending)?;
        self.pending.clear();
        self.writer
            .write(&batch)
            .map_err(|e| encode_error("parquet", e))
    }

    /// The finished file's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, StoreError> {
        self.flush_pending()?;
        self.writer
            .into_inner()
            .map_err(|e| encode_error("parquet", e))
    }
}

/// Rows to one Arrow batch through their serde form (the same path the Parquet writer takes).
pub fn rows_to_batch<T: Serialize>(
    schema: SchemaRef,
    rows: &[T],
) -> Result<arrow_array::RecordBatch, StoreError> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|e| encode_error("arrow", e))?;
    decoder
        .serialize(rows)
        .map_err(|e| encode_error("arrow", e))?;
    Ok(decoder
        .flush()
        .map_err(|e| encode_error("arrow", e))?
        .unwrap_or_else(|| arrow_array::RecordBatch::new_empty(schema)))
}

/// A JSON-lines file being written in memory.
#[derive(Default)]
pub struct JsonlPart {
    bytes: Vec<u8>,
    rows: u64,
}

impl JsonlPart {
    pub fn push(&mut self, row: &impl Serialize) -> Result<(), StoreError> {
        serde_json::to_writer(&mut self.bytes, row).map_err(|e| encode_error("jsonl", e))?;
        self.bytes.push(b'\n');
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// ISO 8601 in UTC, as Step Functions writes times: whole seconds, a fraction only when there is one.
fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One seed page: the body Step Functions' `PutObject` wrote, `{"Patches":[...]}`, with the
/// SDK-integration member names (`KbId`, `CveIds`) and ISO-8601 `InstalledTime` as the API sent
/// it (a patch not installed: `1970-01-01T00:00:00Z` or `0001-01-01T00:00:00Z`, the wire's 0 or
/// year 1; `1970-…` when that is not known, as for imported rows).
pub fn seed_page(patches: &[PatchRecord]) -> Vec<u8> {
    let list: Vec<Value> = patches
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.insert(
                "Classification".into(),
                Value::String(p.classification.clone()),
            );
            if let Some(cves) = &p.cve_ids {
                m.insert("CveIds".into(), Value::String(cves.clone()));
            }
            m.insert(
                "InstalledTime".into(),
                Value::String(iso(p
                    .installed_time_sent
                    .or(p.installed_time)
                    .unwrap_or(DateTime::UNIX_EPOCH))),
            );
            m.insert("KbId".into(), Value::String(p.kb_id.clone()));
            m.insert("Severity".into(), Value::String(p.severity.clone()));
            m.insert("State".into(), Value::String(p.state.clone()));
            m.insert("Title".into(), Value::String(p.title.clone()));
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("Patches".into(), Value::Array(list));
    Value::Object(body).to_string().into_bytes()
}

/// One patch of a seed page, in either spelling: the Step Functions integration's (`KbId`,
/// ISO `InstalledTime`, `CveIds`) or the raw API's (`KBId`, epoch `InstalledTime`, `CVEIds`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SeedPatch {
    #[serde(alias = "KBId")]
    #[serde(rename = "KbId")]
    pub kb_id: String,
    #[serde(rename = "Title", default)]
    pub title: String,
    #[serde(rename = "Classification", default)]
    pub classification: String,
    #[serde(rename = "Severity", default)]
    pub severity: String,
    #[serde(rename = "State", default)]
    pub state: String,
    #[serde(rename = "InstalledTime", default)]
    pub installed_time: Option<Value>,
    #[serde(rename = "CveIds", alias = "CVEIds", default)]
    pub cve_ids: Option<String>,
}

#[derive(serde::Deserialize)]
struct SeedBody {
    #[serde(rename = "Patches")]
    patches: Vec<SeedPatch>,
}

/// Parses a seed page body; `None` when it is not one.
pub fn parse_seed_page(bytes: &[u8]) -> Result<Vec<SeedPatch>, String> {
    serde_json::from_slice::<SeedBody>(bytes)
        .map(|b| b.patches)
        .map_err(|e| format!("not a seed page ({{\"Patches\":[...]}}): {e}"))
}

impl SeedPatch {
    /// The install time, whether sent as ISO text or epoch seconds; `None` for 0, year 1 and 1970.
    pub fn installed_at(&self) -> Option<DateTime<Utc>> {
        self.installed_sent().filter(|t| t.timestamp() > 0)
    }

    /// `InstalledTime` as the page holds it, not-installed markers (0, year 1) included.
    pub fn installed_sent(&self) -> Option<DateTime<Utc>> {
        match self.installed_time.as_ref()? {
            Value::String(s) => Some(DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc)),
            Value::Number(n) => DateTime::from_timestamp(n.as_f64()? as i64, 0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use patchtrail_model::patches_schema;

    fn patch(kb: &str, installed: Option<DateTime<Utc>>) -> PatchRecord {
        PatchRecord {
            run_id: "r".into(),
            snapshot_time: Utc
                .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
                .single()
                .expect("time"),
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            instance_id: "i-0123456789abcdef0".into(),
            kb_id: kb.into(),
            title: "t".into(),
            classification: "Security".into(),
            severity: "Critical".into(),
            state: if installed.is_some() {
                "Installed".into()
            } else {
                "Missing".into()
            },
            installed_time: installed,
            cve_ids: installed.is_none().then(|| "CVE-2026-0001".to_string()),
            release_date: None,
            installed_time_sent: None,
        }
    }

    #[test]
    fn seed_page_has_the_seed_shape() {
        let t = Utc
            .with_ymd_and_hms(2026, 2, 20, 2, 10, 0)
            .single()
            .expect("time");
        let body = String::from_utf8(seed_page(&[patch("KB1", Some(t)), patch("KB2", None)]))
            .expect("utf8");
        assert_eq!(
            body,
            r#"{"Patches":[{"Classification":"Security","InstalledTime":"2026-02-20T02:10:00Z","KbId":"KB1","Severity":"Critical","State":"Installed","Title":"t"},{"Classification":"Security","CveIds":"CVE-2026-0001","InstalledTime":"1970-01-01T00:00:00Z","KbId":"KB2","Severity":"Critical","State":"Missing","Title":"t"}]}"#
        );
    }

    #[test]
    fn seed_pages_read_back_in_both_spellings() {
        let t = Utc
            .with_ymd_and_hms(2026, 2, 20, 2, 10, 0)
            .single()
            .expect("time");
        let ours = parse_seed_page(&seed_page(&[patch("KB1", Some(t)), patch("KB2", None)]))
            .expect("ours");
        assert_eq!(ours[0].kb_id, "KB1");
        assert_eq!(ours[0].installed_at(), Some(t));
        assert_eq!(ours[1].installed_at(), None);
        assert_eq!(ours[1].cve_ids.as_deref(), Some("CVE-2026-0001"));
        let raw = br#"{"Patches":[{"KBId":"KB9","Title":"x","Classification":"Security","Severity":"Low","State":"Missing","InstalledTime":0.0,"CVEIds":"CVE-1"}]}"#;
        let api = parse_seed_page(raw).expect("api spelling");
        assert_eq!(
            (
                api[0].kb_id.as_str(),
                api[0].installed_at(),
                api[0].cve_ids.as_deref()
            ),
            ("KB9", None, Some("CVE-1"))
        );
        assert!(parse_seed_page(b"{}").is_err());
    }

    #[test]
    fn parquet_part_holds_every_row() {
        // Over several batches and row groups, and a last batch that is not full.
        let row_group = 64;
        let rows = row_group * 3 + 5;
        let mut part = ParquetPart::new(patches_schema(), row_group).expect("writer");
        for i in 0..rows {
            part.push(patch(&format!("KB{i}"), None)).expect("push");
        }
        assert_eq!(part.rows(), rows as u64);
        let bytes = part.finish().expect("finish");
        let reader =
            parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::from(bytes))
                .expect("parquet");
        use parquet::file::reader::FileReader;
        use parquet::record::RowAccessor;
        let meta = reader.metadata();
        assert_eq!(meta.file_metadata().num_rows(), rows as i64);
        assert_eq!(meta.num_row_groups(), 4);
        let kb: Vec<String> = reader
            .get_row_iter(None)
            .expect("rows")
            .map(|r| r.expect("row").get_string(5).expect("kb_id").clone())
            .collect();
        let want: Vec<String> = (0..rows).map(|i| format!("KB{i}")).collect();
        assert_eq!(kb, want, "every row once, in order");
    }
}
