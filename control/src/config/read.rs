//! Reading the text of `tandem.toml` into its [`model`](super::model):
//! TOML syntax first, then serde through `serde_path_to_error`, so that a
//! problem names its field by path (`service[1].real[0].weight`).
//!
//! serde stops at the first error; an unknown field is taken out of the
//! document and reading goes on, so that every misspelt field is reported
//! (each with the nearest known name), along with the first other problem.
//! This module only reads: what the values mean is checked in
//! [`super::value`] and [`super::validate`].

use serde_path_to_error::{Path, Segment};
use toml::{Table, Value};

use super::{ConfigError, model::File, value::SEP};

/// A bound on the unknown fields taken out before giving up on the rest.
const MAX_UNKNOWN: usize = 64;

/// The file's model, when it deserialized, and the problems met on the way.
pub(super) fn read(text: &str) -> Result<(Option<File>, Vec<ConfigError>), ConfigError> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string()))?;
    let mut doc = Value::Table(table);
    let mut problems = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, File>(doc.clone()) {
            Ok(file) => return Ok((Some(file), problems)),
            Err(e) => e,
        };
        let problem = problem(error.path(), error.inner().message());
        let unknown = matches!(problem, ConfigError::Unknown { .. });
        problems.push(problem);
        if !unknown || problems.len() > MAX_UNKNOWN || !remove(&mut doc, error.path()) {
            return Ok((None, problems));
        }
    }
}

/// Takes the field at `path` out of `doc`; false if it is not there.
fn remove(doc: &mut Value, path: &Path) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return false;
    };
    let mut at = doc;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Seq { index } => at.get_mut(*index),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return false,
        }
    }
    at.as_table_mut().and_then(|t| t.remove(key)).is_some()
}

/// `service[1].real[0].weight`: keys joined by dots, indexes in brackets.
fn field_path(path: &Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(if out.is_empty() { "?" } else { ".?" }),
        }
    }
    out
}

/// A serde error at `path` as a problem of the file. The messages parsed
/// here are serde's own (`missing field`, `unknown field`, `invalid
/// type`) and the leaves' `value SEP problem`.
fn problem(path: &Path, message: &str) -> ConfigError {
    let field = field_path(path);
    let ticked: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if message.starts_with("missing field `") {
        let name = ticked.first().copied().unwrap_or_default();
        let field = if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
        return ConfigError::Missing { field };
    }
    if message.starts_with("unknown field `") {
        // "unknown field `intreval_ms`, expected one of `port`, `interval_ms`, ..."
        let name = ticked.first().copied().unwrap_or_default();
        let did_you_mean = nearest(name, ticked.iter().skip(1).copied());
        return ConfigError::Unknown {
            field,
            did_you_mean,
        };
    }
    if let Some((value, problem)) = message.split_once(SEP) {
        return ConfigError::Invalid {
            field,
            value: value.into(),
            problem: problem.into(),
        };
    }
    // "invalid type: integer `1`, expected a table"
    if let Some((got, wanted)) = message
        .strip_prefix("invalid type: ")
        .and_then(|m| m.split_once(", expected "))
    {
        return ConfigError::Invalid {
            field,
            value: got.into(),
            problem: format!("is not {wanted}"),
        };
    }
    ConfigError::Refused {
        field,
        message: message.into(),
    }
}

/// The known name closest to `name`, if it is close enough to be a slip:
/// at most one edit per three characters (and at least one).
pub(super) fn nearest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    known
        .map(|k| (edit_distance(name, k), k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k.to_string())
}

/// Insertions, deletions, substitutions and swaps of two neighbours
/// (optimal string alignment distance).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}
