//! `report.json`: the whole report (fields in `reports/README.md`).

use super::Report;

pub fn render(report: &Report) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}
