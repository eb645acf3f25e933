//! Key material others may read: a key file, or `tandem.toml` itself
//! when it holds a key inline, whose mode gives the group or others any
//! access. tandemd refuses such a configuration, as ssh refuses a private
//! key others may read, naming the file, its mode and the fix (`chmod
//! 600 FILE`); `tandemd --allow-open-keys` ([`OpenKeys::Warn`]) starts
//! with a warning instead.
//!
//! Only the check: reading the keys is [`super::keys`]'s.

use std::{
    fmt,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use super::{Config, KeySource};

/// What to do with key material others than its owner may read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpenKeys {
    /// Refuse the configuration (the default).
    #[default]
    Refuse,
    /// Accept it, with a warning per file (`--allow-open-keys`).
    Warn,
}

/// A file holding key material that others than its owner may read or write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenKey {
    pub path: PathBuf,
    /// Its permission bits (`0o644`).
    pub mode: u32,
    /// What it holds: `the heartbeat.key_file key`, `inline keys (heartbeat.key)`.
    pub holds: String,
}

impl OpenKey {
    /// The file at `path` (with `meta`) as an open key, if its mode lets
    /// the group or others in.
    pub fn of(path: &Path, meta: &std::fs::Metadata, holds: &str) -> Option<OpenKey> {
        let mode = meta.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then(|| OpenKey {
            path: path.to_owned(),
            mode,
            holds: holds.to_owned(),
        })
    }
}

impl fmt::Display for OpenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: holds {} and is mode {:04o}, so others than its owner may read it: run `chmod 600 {}` (or start tandemd with --allow-open-keys)",
            self.path.display(),
            self.holds,
            self.mode,
            self.path.display()
        )
    }
}

/// The configuration file at `path`, read as `cfg`, as an open key when
/// it holds a key inline and others may read it.
pub(super) fn inline_in(path: &Path, cfg: &Config) -> Option<OpenKey> {
    let mut inline = Vec::new();
    if cfg.heartbeat.key.source == KeySource::Inline {
        inline.push("heartbeat.key");
    }
    let is_inline = |k: Option<&super::KeyConfig>| k.is_some_and(|k| k.source == KeySource::Inline);
    if is_inline(cfg.heartbeat.next_key.as_ref()) {
        inline.push("heartbeat.next_key");
    }
    if is_inline(cfg.heartbeat.ivr_key.as_ref()) {
        inline.push("heartbeat.ivr_key");
    }
    if is_inline(cfg.sync.as_ref().map(|s| &s.key)) {
        inline.push("sync.key");
    }
    if is_inline(cfg.sync.as_ref().and_then(|s| s.next_key.as_ref())) {
        inline.push("sync.next_key");
    }
    if inline.is_empty() {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    OpenKey::of(path, &meta, &format!("inline keys ({})", inline.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    /// A scratch directory, removed on drop.
    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    const BASE: &str = r#"[node]
id = 1
peer_id = 2
name = "a"

[heartbeat]
interval_ms = 10
KEY
paths = [{ name = "link", interface = "lo", local = "198.18.1.1", peer = "198.18.1.2" }]

[dataplane]
xdp_mode = "generic"
interfaces = ["lo"]
"#;

    fn dir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tandem-open-keys-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("dir");
        Dir(d)
    }

    #[test]
    fn a_config_with_an_inline_key_others_may_read_is_refused_or_warned_of() {
        let d = dir("inline");
        let text = BASE.replace("KEY", r#"key = "000102030405060708090a0b0c0d0e0f""#);
        let open = file(&d.0, "open.toml", &text, 0o644);
        match Config::load(&open) {
            Err(ConfigError::OpenKeys(k)) => {
                assert_eq!((k.path.as_path(), k.mode), (open.as_path(), 0o644));
                assert!(k.holds.contains("heartbeat.key"), "{}", k.holds);
                let shown = k.to_string();
                assert!(shown.contains(&format!("chmod 600 {}", open.display())), "{shown}");
            }
            other => panic!("not refused as an open key: {other:?}"),
        }
        let (cfg, warnings) = Config::load_with(&open, OpenKeys::Warn).expect("warned, not refused");
        assert_eq!(cfg.node.id, 1);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].mode, 0o644);
        // Group-readable is open too; owner-only is fine.
        let group = file(&d.0, "group.toml", &text, 0o640);
        assert!(matches!(Config::load(&group), Err(ConfigError::OpenKeys(k)) if k.mode == 0o640));
        let private = file(&d.0, "private.toml", &text, 0o600);
        let (_, warnings) = Config::load_with(&private, OpenKeys::Warn).expect("private");
        assert!(warnings.is_empty());
        assert!(Config::load(&private).is_ok());
    }

    #[test]
    fn key_files_others_may_read_are_refused_or_warned_of_and_the_config_may_be_open() {
        let d = dir("files");
        let key = file(&d.0, "hb.key", "0f0e0d0c0b0a09080706050403020100\n", 0o644);
        let text = BASE.replace("KEY", &format!("key_file = \"{}\"", key.display()));
        // No key in the file itself: it may be world-readable.
        let cfg_path = file(&d.0, "tandem.toml", &text, 0o644);
        let e = Config::load(&cfg_path).expect_err("an open key file");
        assert_eq!(e.field(), Some("heartbeat.key_file"));
        assert!(e.to_string().contains(&format!("chmod 600 {}", key.display())), "{e}");
        let (cfg, warnings) = Config::load_with(&cfg_path, OpenKeys::Warn).expect("warned");
        assert_eq!(cfg.heartbeat.key[0], 0x0f);
        assert_eq!(
            warnings,
            vec![OpenKey {
                path: key.clone(),
                mode: 0o644,
                holds: "the heartbeat.key_file key".into()
            }]
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        let (_, warnings) = Config::load_with(&cfg_path, OpenKeys::Warn).expect("private key file");
        assert!(warnings.is_empty());
    }
}
