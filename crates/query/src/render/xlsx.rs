//! Excel workbook: one sheet per table, frozen header row, autofilter, numbers as numbers.

use super::headers;
use crate::QueryError;
use crate::report::Report;
use crate::report::{cell_text, is_numeric};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};

fn xlsx_error(e: rust_xlsxwriter::XlsxError) -> QueryError {
    QueryError::Render(format!("xlsx: {e}"))
}

/// Sheet names: at most 31 characters, without `[]:*?/\`, unique.
fn sheet_name(name: &str, taken: &mut Vec<String>) -> String {
    let clean: String = name
        .chars()
        .filter(|c| !"[]:*?/\\".contains(*c))
        .take(28)
        .collect();
    let mut candidate = if clean.is_empty() {
        "Sheet".to_string()
    } else {
        clean
    };
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{}-{n}", candidate.chars().take(26).collect::<String>());
        n += 1;
    }
    taken.push(candidate.clone());
    candidate
}

pub fn workbook(report: &Report) -> Result<Vec<u8>, QueryError> {
    let mut book = Workbook::new();
    // rust_xlsxwriter stamps the wall clock as the creation time unless told otherwise.
    if let Some(when) = report.as_of {
        let created = ExcelDateTime::from_timestamp(when.timestamp()).map_err(xlsx_error)?;
        book.set_properties(&DocProperties::new().set_creation_datetime(&created));
    }
    let header = Format::new().set_bold().set_background_color("#EAECEE");
    let mut taken = Vec::new();
    // Notes (§1.5) first, on a sheet of their own that opens with the workbook.
    if !report.notes.is_empty() {
        let sheet = book.add_worksheet();
        sheet
            .set_name(sheet_name(report.lang.note(), &mut taken))
            .map_err(xlsx_error)?;
        for (r, note) in report.notes.iter().enumerate() {
            sheet.write_string(r as u32, 0, note).map_err(xlsx_error)?;
        }
    }
    for table in &report.tables {
        let sheet = book.add_worksheet();
        sheet
            .set_name(sheet_name(&report.lang.table(&table.name), &mut taken))
            .map_err(xlsx_error)?;
        let names = headers(table, report.lang);
        for (c, n) in names.iter().enumerate() {
            sheet
                .write_string_with_format(0, c as u16, n, &header)
                .map_err(xlsx_error)?;
        }
        let rows = cell_text(table)?;
        for (r, row) in rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, cell) in row.iter().enumerate() {
                let c = c as u16;
                if cell.is_empty() {
                    continue;
                }
                match cell.parse::<f64>() {
                    Ok(v) if is_numeric(table, c as usize) => {
                        sheet.write_number(r, c, v).map_err(xlsx_error)?
                    }
                    _ => sheet.write_string(r, c, cell).map_err(xlsx_error)?,
                };
            }
        }
        sheet.set_freeze_panes(1, 0).map_err(xlsx_error)?;
        let last_col = names.len().saturating_sub(1) as u16;
        sheet
            .autofilter(0, 0, rows.len() as u32, last_col)
            .map_err(xlsx_error)?;
        sheet.autofit();
    }
    book.save_to_buffer().map_err(xlsx_error)
}

#[cfg(test)]
mod tests {
    use super::sheet_name;

    #[test]
    fn sheet_names_are_valid_and_unique() {
        let mut taken = Vec::new();
        assert_eq!(sheet_name("instances", &mut taken), "instances");
        assert_eq!(sheet_name("instances", &mut taken), "instances-2");
        assert_eq!(sheet_name("a/b:c", &mut taken), "abc");
    }
}
