//! The keys of `tandem.toml`, one per role (see [`crate::keys`]): each
//! written inline (`key = "…32 hex digits…"`) or kept in a file of its own
//! (`key_file = "/etc/tandem/heartbeat.key"`, readable by its owner only).
//!
//! | role | inline | file | absent |
//! | --- | --- | --- | --- |
//! | director heartbeats | `heartbeat.key` | `heartbeat.key_file` | refused |
//! | IVR master | `heartbeat.ivr_key` | `heartbeat.ivr_key_file` | refused if a real has a `node_id` |
//! | sync | `sync.key` | `sync.key_file` | derived from the director heartbeat key |
//! | next director heartbeats | `heartbeat.next_key` | `heartbeat.next_key_file` | no rotation |
//! | next sync | `sync.next_key` | `sync.next_key_file` | derived from `heartbeat.next_key` when `sync.key` is derived; else no rotation |
//!
//! A next key is the one a rotation moves to (see the README's operator
//! procedure): what is received is taken under the current key or the
//! next one, what is sent is made under the current one. It follows the
//! current key's rules and may be no other key of the file, the current
//! one of its role included.
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
    pub heartbeat_next: Option<KeyConfig>,
    pub ivr: Option<KeyConfig>,
    /// Derived when `[sync]` names none.
    pub sync: KeyConfig,
    pub sync_next: Option<KeyConfig>,
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
    let mut read = |field: &str, inline: &Option<Key>, path: &Option<super::value::AbsPath>| {
        one(field, inline, path, (policy, &mut *warnings), &mut problems)
    };
    let heartbeat = read("heartbeat.key", &hb.key, &hb.key_file);
    let heartbeat_next = read("heartbeat.next_key", &hb.next_key, &hb.next_key_file);
    let ivr = read("heartbeat.ivr_key", &hb.ivr_key, &hb.ivr_key_file);
    let (sync, sync_next) = match file.sync.as_ref() {
        Some(s) => (
            read("sync.key", &s.key, &s.key_file),
            read("sync.next_key", &s.next_key, &s.next_key_file),
        ),
        None => (None, None),
    };
    let Some(heartbeat) = heartbeat else {
        if problems.is_empty() {
            problems.push(ConfigError::Missing {
                field: "heartbeat.key".into(),
            });
        }
        return Err(problems);
    };
    // Every key written in the file, by field: no two may be the same.
    let named = [
        ("heartbeat.key", Some(&heartbeat)),
        ("heartbeat.next_key", heartbeat_next.as_ref()),
        ("heartbeat.ivr_key", ivr.as_ref()),
        ("sync.key", sync.as_ref()),
        ("sync.next_key", sync_next.as_ref()),
    ];
    for (i, (field, key)) in named.iter().enumerate() {
        let Some(key) = key else { continue };
        if let Some((other, _)) = named[..i]
            .iter()
            .find(|(_, k)| k.is_some_and(|k| **k == ***key))
        {
            let problem = if field.replace("next_key", "key") == *other {
                format!(
                    "is the same key as {other}: a next key is the one a rotation moves to, not the current one"
                )
            } else {
                format!("is the same key as {other}: each role needs its own key")
            };
            problems.push(ConfigError::Invalid {
                field: (*field).into(),
                value: "(not shown)".into(),
                problem,
            });
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // A sync key the file does not name derives from the heartbeat key
    // of the same step of a rotation.
    let derived = |from: &KeyConfig| KeyConfig {
        secret: Secret::new(derived_sync_key(from)),
        source: KeySource::Derived,
    };
    let sync_named = sync.is_some();
    let sync = sync.unwrap_or_else(|| derived(&heartbeat));
    let sync_next = match (sync_next, sync_named) {
        (Some(k), _) => Some(k),
        (None, false) => heartbeat_next.as_ref().map(derived),
        (None, true) => None,
    };
    Ok(Loaded {
        heartbeat,
        heartbeat_next,
        ivr,
        sync,
        sync_next,
    })
}
