//! Key rotation in the configuration (issue 14): the next keys
//! (`heartbeat.next_key`, `sync.next_key`, inline or in files) follow the
//! current keys' rules and are named in every refusal without their
//! bytes; a sync key the file does not name derives from the heartbeat
//! key of the same step; a reload's plan takes key changes live; a
//! standby taking the active's services keeps its own keys.

use super::diff::{Change, KeyChange, KeyChangeKind, NotLive, diff};
use super::tests::GOOD;
use super::*;
use crate::keys::derived_sync_key;

const OLD: &str = "000102030405060708090a0b0c0d0e0f";
const NEW: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";
const SYNC_OLD: &str = "5050505050505050505050505050505a";
const SYNC_NEW: &str = "6060606060606060606060606060606b";

/// GOOD with `extra` lines after the heartbeat key (and `sync`, if any,
/// as a `[sync]` table).
fn file(current: &str, extra: &str, sync: &str) -> String {
    let line = format!("key = \"{OLD}\"\n");
    assert!(GOOD.contains(&line), "the fixture's heartbeat key");
    let text = GOOD.replacen(&line, &format!("key = \"{current}\"\n{extra}"), 1);
    if sync.is_empty() {
        text
    } else {
        format!("{text}\n[sync]\n{sync}")
    }
}

fn parse(text: &str) -> Config {
    Config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn error_of(text: &str) -> String {
    match Config::parse(text) {
        Ok(_) => panic!("accepted a bad config:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn bytes(hex: &str) -> [u8; 16] {
    super::value::parse_key(hex).expect("hex key")
}

#[test]
fn next_keys_are_read_and_a_derived_sync_key_follows_the_heartbeat_key() {
    let c = parse(&file(OLD, &format!("next_key = \"{NEW}\"\n"), ""));
    let next = c.heartbeat.next_key.as_ref().expect("next key");
    assert_eq!(**next, bytes(NEW));
    assert_eq!(next.source, KeySource::Inline);
    let sync = c.sync.as_ref().expect("sync on");
    assert_eq!(*sync.key, derived_sync_key(&bytes(OLD)));
    let sync_next = sync
        .next_key
        .as_ref()
        .expect("derived from heartbeat.next_key");
    assert_eq!(
        (**sync_next, &sync_next.source),
        (derived_sync_key(&bytes(NEW)), &KeySource::Derived)
    );
    // Without a next heartbeat key, no next sync key.
    assert!(parse(GOOD).sync.expect("sync").next_key.is_none());
    // A sync key of its own rotates on its own.
    let c = parse(&file(
        OLD,
        &format!("next_key = \"{NEW}\"\n"),
        &format!("key = \"{SYNC_OLD}\"\n"),
    ));
    assert!(
        c.sync.as_ref().expect("sync").next_key.is_none(),
        "sync.key named, no sync.next_key"
    );
    let c = parse(&file(
        OLD,
        "",
        &format!("key = \"{SYNC_OLD}\"\nnext_key = \"{SYNC_NEW}\"\n"),
    ));
    assert_eq!(
        **c.sync
            .as_ref()
            .expect("sync")
            .next_key
            .as_ref()
            .expect("next"),
        bytes(SYNC_NEW)
    );
    assert!(c.heartbeat.next_key.is_none());
}

#[test]
fn next_keys_are_written_out_hidden_and_read_back_with_their_bytes() {
    let c = parse(&file(
        OLD,
        &format!("next_key = \"{NEW}\"\n"),
        &format!("key = \"{SYNC_OLD}\"\nnext_key = \"{SYNC_NEW}\"\n"),
    ));
    let shown = c.to_toml();
    for hex in [OLD, NEW, SYNC_OLD, SYNC_NEW] {
        assert!(!shown.contains(hex), "{shown}");
        assert!(!format!("{c:?}").contains(&hex[..10]));
    }
    assert_eq!(
        shown.matches("next_key = \"(not shown)\"").count(),
        2,
        "{shown}"
    );
    assert_eq!(
        Config::parse(&c.to_toml_with_keys()).expect("round trip"),
        c
    );
    // A derived next sync key is written nowhere.
    let d = parse(&file(OLD, &format!("next_key = \"{NEW}\"\n"), ""));
    assert_eq!(
        d.to_toml().matches("next_key").count(),
        1,
        "{}",
        d.to_toml()
    );
}

#[test]
fn a_bad_next_key_is_refused_naming_its_field_and_never_its_bytes() {
    let cases = [
        (
            file(OLD, "next_key = \"a0a1a2a3\"\n", ""),
            "heartbeat.next_key: (a key of 8 characters, not shown) is not a 16-byte key written as 32 hexadecimal digits",
        ),
        (
            file(OLD, "next_key = \"00000000000000000000000000000000\"\n", ""),
            "heartbeat.next_key: (a key of 32 characters, not shown) is all zeros: not a secret",
        ),
        (
            file(OLD, &format!("next_key = \"{OLD}\"\n"), ""),
            "heartbeat.next_key: (not shown) is the same key as heartbeat.key: a next key is the one a rotation moves to, not the current one",
        ),
        (
            file(
                OLD,
                &format!("next_key = \"{NEW}\"\nivr_key = \"{NEW}\"\n"),
                "",
            ),
            "heartbeat.ivr_key: (not shown) is the same key as heartbeat.next_key: each role needs its own key",
        ),
        (
            file(
                OLD,
                &format!("next_key = \"{NEW}\"\nnext_key_file = \"/etc/tandem/next.key\"\n"),
                "",
            ),
            "heartbeat.next_key_file: (set) is given with heartbeat.next_key: give one of the two",
        ),
        (
            file(
                OLD,
                &format!("next_key = \"{NEW}\"\n"),
                &format!("key = \"{SYNC_OLD}\"\nnext_key = \"{NEW}\"\n"),
            ),
            "sync.next_key: (not shown) is the same key as heartbeat.next_key: each role needs its own key",
        ),
        (
            file(
                OLD,
                "",
                &format!("key = \"{SYNC_OLD}\"\nnext_key = \"{SYNC_OLD}\"\n"),
            ),
            "sync.next_key: (not shown) is the same key as sync.key: a next key is the one a rotation moves to, not the current one",
        ),
        (
            file(
                OLD,
                "",
                &format!("key = \"{SYNC_OLD}\"\nnext_key = \"{OLD}\"\n"),
            ),
            "sync.next_key: (not shown) is the same key as heartbeat.key: each role needs its own key",
        ),
        (
            file(OLD, "", "nxt_key = \"00\"\n"),
            "sync.nxt_key: unknown field (did you mean `next_key`?)",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = error_of(text);
            (got != *want).then(|| format!("want: {want}\n got: {got}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {}:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    for (text, _) in &cases {
        let e = error_of(text);
        assert!(
            !e.contains("a0a1a2a3") && !e.contains(OLD) && !e.contains(SYNC_OLD),
            "{e}"
        );
    }
}

#[test]
fn next_key_files_are_checked_like_the_current_ones() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tandem-next-keyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str, mode: u32| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let good = write("next.key", &format!("# the key we move to\n{NEW}\n"), 0o600);
    let hb = |p: &std::path::Path| file(OLD, &format!("next_key_file = \"{}\"\n", p.display()), "");
    let sync = |p: &std::path::Path| {
        file(
            OLD,
            "",
            &format!(
                "key = \"{SYNC_OLD}\"\nnext_key_file = \"{}\"\n",
                p.display()
            ),
        )
    };
    let c = parse(&hb(&good));
    let next = c.heartbeat.next_key.as_ref().expect("read");
    assert_eq!(
        (**next, &next.source),
        (bytes(NEW), &KeySource::File(good.clone()))
    );
    assert!(
        c.to_toml()
            .contains(&format!("next_key_file = \"{}\"", good.display()))
    );
    assert_eq!(
        Config::parse(&c.to_toml_with_keys()).expect("names the file"),
        c
    );
    let sync_next = parse(&sync(&good))
        .sync
        .expect("sync")
        .next_key
        .expect("read");
    assert_eq!(*sync_next, bytes(NEW));

    let open = write("open.key", &format!("{NEW}\n"), 0o640);
    for (text, field) in [
        (hb(&open), "heartbeat.next_key_file: "),
        (sync(&open), "sync.next_key_file: "),
    ] {
        let e = error_of(&text);
        assert!(
            e.starts_with(field)
                && e.contains("is mode 0640")
                && e.contains(&format!("chmod 600 {}", open.display())),
            "{e}"
        );
        assert!(!e.contains(NEW), "{e}");
    }
    // Under --allow-open-keys: accepted, and warned of by name.
    let path = write("tandem.toml", &hb(&open), 0o600);
    let (_, warnings) = Config::load_with(&path, OpenKeys::Warn).expect("warned, not refused");
    assert!(
        warnings
            .iter()
            .any(|w| w.holds.contains("heartbeat.next_key_file")),
        "{warnings:?}"
    );
    let zero = write("zero.key", "00000000000000000000000000000000\n", 0o600);
    let e = error_of(&hb(&zero));
    assert!(
        e.starts_with("heartbeat.next_key_file: ") && e.contains("all-zero key"),
        "{e}"
    );
    // An inline next key in a file others may read is named as such.
    let inline = write(
        "inline.toml",
        &file(OLD, &format!("next_key = \"{NEW}\"\n"), ""),
        0o644,
    );
    match Config::load(&inline) {
        Err(ConfigError::OpenKeys(k)) => {
            assert!(k.holds.contains("heartbeat.next_key"), "{}", k.holds)
        }
        other => panic!("not refused as open keys: {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn each_step_of_a_rotation_is_a_live_change_of_keys() {
    let both = |current: &str, next: Option<&str>| {
        let extra = next
            .map(|n| format!("next_key = \"{n}\"\n"))
            .unwrap_or_default();
        parse(&file(current, &extra, ""))
    };
    let steps = [
        (
            both(OLD, None),
            both(OLD, Some(NEW)),
            vec![
                ("heartbeat.next_key", KeyChangeKind::Added),
                ("sync.next_key", KeyChangeKind::Added),
            ],
        ),
        (
            both(OLD, Some(NEW)),
            both(NEW, Some(OLD)),
            vec![
                ("heartbeat.key", KeyChangeKind::NowTheFormerNext),
                ("heartbeat.next_key", KeyChangeKind::Changed),
                ("sync.key", KeyChangeKind::NowTheFormerNext),
                ("sync.next_key", KeyChangeKind::Changed),
            ],
        ),
        (
            both(NEW, Some(OLD)),
            both(NEW, None),
            vec![
                ("heartbeat.next_key", KeyChangeKind::Removed),
                ("sync.next_key", KeyChangeKind::Removed),
            ],
        ),
    ];
    for (from, to, want) in steps {
        let d = diff(&from, &to);
        assert!(d.applicable(), "{d}");
        let want: Vec<KeyChange> = want
            .into_iter()
            .map(|(field, change)| KeyChange { field, change })
            .collect();
        assert_eq!(d.changes, [Change::KeysEdited { fields: want }], "{d}");
        assert_eq!(
            from.fingerprint(),
            to.fingerprint(),
            "keys are not what the pair replicates"
        );
    }
    let d = diff(&both(OLD, Some(NEW)), &both(NEW, Some(OLD)));
    assert_eq!(
        d.to_string(),
        "~ keys: heartbeat.key changed to the former next key; heartbeat.next_key changed; sync.key changed to the former next key; sync.next_key changed\n"
    );
    assert!(!d.to_string().contains(OLD) && !d.to_string().contains(NEW));
    // The IVR master key is not rotated live.
    let ivr = |k: &str| parse(&file(OLD, &format!("ivr_key = \"{k}\"\n"), ""));
    let d = diff(&ivr(SYNC_OLD), &ivr(SYNC_NEW));
    assert_eq!(
        d.refused
            .iter()
            .map(|r| (r.field.as_str(), r.why))
            .collect::<Vec<_>>(),
        [("heartbeat.ivr_key", NotLive::NotYet)]
    );
}

#[test]
fn a_standby_taking_the_actives_services_keeps_its_own_keys() {
    let own = parse(&file(NEW, &format!("next_key = \"{OLD}\"\n"), ""));
    let active = parse(&file(OLD, "", "").replacen("weight = 2", "weight = 7", 1));
    let followed = own
        .with_services(&active.services_toml())
        .expect("replicated");
    assert_eq!(followed.fingerprint(), active.fingerprint());
    assert_eq!(followed.heartbeat.key, own.heartbeat.key);
    assert_eq!(followed.heartbeat.next_key, own.heartbeat.next_key);
    assert_eq!(followed.sync, own.sync);
    assert!(
        diff(&own, &followed)
            .changes
            .iter()
            .all(|c| !matches!(c, Change::KeysEdited { .. }))
    );
}
