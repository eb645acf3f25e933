//! The keys of `tandem.toml`, one per role (see [`crate::keys`]): each
//! written inline (`key = "…32 hex digits…"`) or kept in a file of its own
//! (`key_file = "/etc/tandem/heartbeat.key"`, readable by its owner only).
//!
//! | role | inline | file | absent |
//! | --- | --- | --- | --- |
//! | director heartbeats | `heartbeat.key` | `heartbeat.key_file` | refused |
//! | IVR master | `heartbeat.ivr_key` | `heartbeat.ivr_key_file` | refused if a real has a `node_id` |
//! | sync | `sync.key` | `sync.key_file` | derived from the director heartbeat key |
//!
//! [`load`] reads the key files of a file that passed every other check:
//! it refuses a file others may read or write (as ssh does a private key;
//! with [`OpenKeys::Warn`], tandemd's `--allow-open-keys`, it warns
//! instead), content that is not one key,
//! an all-zero key, and two roles given the same key — each problem naming
//! its field, none showing a key. Besides a card's `system_conf`
//! ([`super::system_conf`]), this is the only place where the configuration
//! reads a file other than `tandem.toml`.

use std::{
    fs,
    ops::Deref,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::{
    ConfigError, OpenKey, OpenKeys,
    model::File,
    value::{Key, parse_key, quoted},
};
use crate::keys::{Secret, derived_sync_key};

/// Where a key came from, so that writing the configuration out names its
/// file (or nothing), never its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Written in `tandem.toml`.
    Inline,
    /// Read from this file.
    File(PathBuf),
    /// Not written anywhere: derived from another key.
    Derived,
}

/// A key of the configuration: its bytes (through `Deref`, never shown)
/// and where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyConfig {
    pub secret: Secret,
    pub source: KeySource,
}

impl Deref for KeyConfig {
    type Target = [u8; 16];
    fn deref(&self) -> &[u8; 16] {
        &self.secret
    }
}

impl KeyConfig {
    /// A key written in the file (tests, and configurations built in code).
    pub fn inline(bytes: [u8; 16]) -> KeyConfig {
        KeyConfig {
            secret: Secret::new(bytes),
            source: KeySource::Inline,
        }
    }

    /// The `key` and `key_file` fields that write this key out: the file's
    /// path, the bytes (only when `show` and the key was inline) or
    /// [`Key::Hidden`], or nothing for a derived key.
    pub(super) fn fields(&self, show: bool) -> (Option<Key>, Option<super::value::AbsPath>) {
        match &self.source {
            KeySource::Inline if show => (Some(Key::Bytes(*self.secret)), None),
            KeySource::Inline => (Some(Key::Hidden), None),
            KeySource::File(p) => (
                None,
                Some(super::value::AbsPath(p.to_string_lossy().into_owned())),
            ),
            KeySource::Derived => (None, None),
        }
    }
}

/// Every key of a valid file.
pub(super) struct Loaded {
    pub heartbeat: KeyConfig,
    pub ivr: Option<KeyConfig>,
    /// None when sync is off.
    pub sync: KeyConfig,
}

/// The most a key file may hold (one key, a newline, a comment line).
const MAX_KEY_FILE: u64 = 4096;

/// One key from its inline value or its file; `None` when neither is set.
/// (Both set is a problem of [`super::validate`], which ran before.)
fn one(
    field: &str,
    inline: &Option<Key>,
    file: &Option<super::value::AbsPath>,
    open: (OpenKeys, &mut Vec<OpenKey>),
    problems: &mut Vec<ConfigError>,
) -> Option<KeyConfig> {
    if let Some(Key::Bytes(b)) = inline {
        return Some(KeyConfig::inline(*b));
    }
    let path = Path::new(&file.as_ref()?.0);
    let (policy, warnings) = open;
    let holds = format!("the {field}_file key");
    match read_key_file_with(path, policy, &holds, warnings) {
        Ok(bytes) => Some(KeyConfig {
            secret: Secret::new(bytes),
            source: KeySource::File(path.to_owned()),
        }),
        Err(problem) => {
            problems.push(ConfigError::Invalid {
                field: format!("{field}_file"),
                value: quoted(&path.to_string_lossy()),
                problem,
            });
            None
        }
    }
}

/// The key in the file at `path`: 32 hexadecimal digits, optionally
/// surrounded by white space and `#` comment lines; the file a regular one
/// that nobody but its owner may read or write.
pub fn read_key_file(path: &Path) -> Result<[u8; 16], String> {
    read_key_file_with(path, OpenKeys::Refuse, "a key", &mut Vec::new())
}

/// [`read_key_file`], with a file others may read refused or, under
/// [`OpenKeys::Warn`], read and added to `warnings` (`holds`: what it
/// holds, for the warning).
fn read_key_file_with(
    path: &Path,
    policy: OpenKeys,
    holds: &str,
    warnings: &mut Vec<OpenKey>,
) -> Result<[u8; 16], String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if let Some(open) = OpenKey::of(path, &meta, holds) {
        match policy {
            OpenKeys::Refuse => {
                return Err(format!(
                    "is mode {:04o} (uid {}): others than its owner may read or write it; run `chmod 600 {}` (or start tandemd with --allow-open-keys)",
                    open.mode,
                    meta.uid(),
                    path.display()
                ));
            }
            OpenKeys::Warn => warnings.push(open),
        }
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(format!(
            "holds {} bytes: a key file holds one key",
            meta.len()
        ));
    }
    let text = fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let (Some(line), None) = (lines.next(), lines.next()) else {
        return Err("does not hold exactly one key line (32 hexadecimal digits)".into());
    };
    match parse_key(line) {
        None => Err(format!(
            "does not hold a 16-byte key written as 32 hexadecimal digits (its key line has {} characters; not shown)",
            line.chars().count()
        )),
        Some(k) if k == [0; 16] => Err("holds an all-zero key: not a secret".into()),
        Some(k) => Ok(k),
    }
}

/// Reads the keys of `file` (which passed [`super::validate`]); with
/// [`OpenKeys::Warn`], the key files others may read are in `warnings`.
pub(super) fn load(
    file: &File,
    policy: OpenKeys,
    warnings: &mut Vec<OpenKey>,
) -> Result<Loaded, Vec<ConfigError>> {
    let mut problems = Vec::new();
    let hb = &file.heartbeat;
    let heartbeat = one(
        "heartbeat.key",
        &hb.key,
        &hb.key_file,
        (policy, warnings),
        &mut problems,
    );
    let ivr = one(
        "heartbeat.ivr_key",
        &hb.ivr_key,
        &hb.ivr_key_file,
        (policy, warnings),
        &mut problems,
    );
    let sync = file.sync.as_ref().and_then(|s| {
        one(
            "sync.key",
            &s.key,
            &s.key_file,
            (policy, warnings),
            &mut problems,
        )
    });
    let Some(heartbeat) = heartbeat else {
        if problems.is_empty() {
            problems.push(ConfigError::Missing {
                field: "heartbeat.key".into(),
            });
        }
        return Err(problems);
    };
    let same = |field: &str, other: &str| ConfigError::Invalid {
        field: field.into(),
        value: "(not shown)".into(),
        problem: format!("is the same key as {other}: each role needs its own key"),
    };
    if ivr.as_ref().is_some_and(|k| **k == *heartbeat) {
        problems.push(same("heartbeat.ivr_key", "heartbeat.key"));
    }
    if let Some(s) = &sync {
        if **s == *heartbeat {
            problems.push(same("sync.key", "heartbeat.key"));
        }
        if ivr.as_ref().is_some_and(|k| **k == **s) {
            problems.push(same("sync.key", "heartbeat.ivr_key"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let sync = sync.unwrap_or_else(|| KeyConfig {
        secret: Secret::new(derived_sync_key(&heartbeat)),
        source: KeySource::Derived,
    });
    Ok(Loaded {
        heartbeat,
        ivr,
        sync,
    })
}
