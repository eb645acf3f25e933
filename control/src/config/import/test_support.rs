//! What the parsers' tests ask of an [`Imported`].

use super::{Cause, Imported};

/// The causes of line `line`, or nothing when it is not listed.
pub fn causes(i: &Imported, line: usize) -> Vec<Cause> {
    i.unexpressed
        .iter()
        .find(|u| u.line == line)
        .map(|u| u.causes.clone())
        .unwrap_or_default()
}

/// The lines listed as not expressed.
pub fn lines(i: &Imported) -> Vec<usize> {
    i.unexpressed.iter().map(|u| u.line).collect()
}
