//! Text output helpers: plurals, shell quoting, tables, time stamps, and
//! the key-ID count arrays of the JSON output.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::json;

/// `n` and `noun`, with the plural that `n` takes ("1 object", "2 objects").
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `n` with `one` or `many` ("1 object has", "2 objects have").
pub fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `objects` or `object`, for a run over `total` objects.
pub fn objects_word(total: u64) -> &'static str {
    if total == 1 { "object" } else { "objects" }
}

/// Quotes a shell word when needed.
pub fn sh(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:=,@+%".contains(&b))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// How a table column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table: the header and each row on a line, columns two spaces apart,
/// each as wide as its widest cell, trailing spaces trimmed.
pub fn table<const N: usize>(header: [&str; N], align: [Align; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            match align[i] {
                Align::Left => l.push_str(&format!("{cell:<w$}", w = widths[i])),
                Align::Right => l.push_str(&format!("{cell:>w$}", w = widths[i])),
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for r in rows {
        line(r.each_ref().map(String::as_str));
    }
    out
}

/// A time as RFC 3339 UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A key-ID map as the JSON array `[{"key_id": N, "objects": n}, ...]`:
/// key IDs as numbers, as everywhere else in the JSON output.
pub fn key_counts_json(map: &BTreeMap<u32, u64>) -> Vec<serde_json::Value> {
    map.iter()
        .map(|(id, n)| json!({"key_id": id, "objects": n}))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_829_696);
        assert_eq!(rfc3339(t), "2026-11-28T01:34:56Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(sh("/tmp/a-b_c.json"), "/tmp/a-b_c.json");
        assert_eq!(sh("with space"), "'with space'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(
            sh("pkcs11:token=t;object=k?module-path=/m.so"),
            "'pkcs11:token=t;object=k?module-path=/m.so'"
        );
        assert_eq!(sh(""), "''");
    }

    #[test]
    fn plurals() {
        assert_eq!(count(0, "object"), "0 objects");
        assert_eq!(count(1, "object"), "1 object");
        assert_eq!(count(2, "byte"), "2 bytes");
        assert_eq!(counted(1, "object is", "objects are"), "1 object is");
        assert_eq!(counted(3, "object is", "objects are"), "3 objects are");
        assert_eq!(objects_word(1), "object");
        assert_eq!(objects_word(0), "objects");
    }

    #[test]
    fn tables_align_and_trim() {
        let t = table(
            ["A", "STATUS", "N"],
            [Align::Left, Align::Left, Align::Right],
            &[
                ["1".into(), "ENABLED (primary)".into(), "12".into()],
                ["22".into(), "x".into(), "3".into()],
            ],
        );
        assert_eq!(
            t,
            "A   STATUS              N\n1   ENABLED (primary)  12\n22  x                   3\n"
        );
        let t = table(
            ["X", "LAST"],
            [Align::Left; 2],
            &[["long".into(), "".into()]],
        );
        assert_eq!(t, "X     LAST\nlong\n");
    }
}
