//! The pair's keys, one per role, and how the ones that are not written in
//! `tandem.toml` are derived from those that are.
//!
//! Three roles, three keys that cannot stand in for each other:
//! - the **director heartbeat key** (`heartbeat.key`), held by both
//!   directors only: it authenticates director↔director heartbeats;
//! - the **IVR master key** (`heartbeat.ivr_key`), held by the directors
//!   only: each IVR server gets its own key derived from it and its node id
//!   ([`ivr_heartbeat_key`]), so an IVR's key authenticates that IVR's
//!   heartbeats and nothing else — not another IVR, not a director;
//! - the **sync key** (`sync.key`, or derived from the director heartbeat
//!   key by [`derived_sync_key`] when absent), from which every sync session
//!   derives its own keys.
//!
//! Derivations are HMAC-SHA256 under the parent key with a label naming the
//! role (a PRF: knowing a derived key tells nothing of the parent or of a
//! sibling). Pure functions; nothing here reads a file or logs a key.

use std::{fmt, ops::Deref};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tandem_common::heartbeat::Key;
use zeroize::Zeroize;

/// 16 secret key bytes: read through `Deref` (`&*secret`), never shown —
/// `Debug` and `Display` print `(key)` — and wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 16]);

impl Secret {
    pub fn new(bytes: [u8; 16]) -> Secret {
        Secret(bytes)
    }
}

impl Deref for Secret {
    type Target = [u8; 16];
    fn deref(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("(key)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("(key)")
    }
}

/// The label of IVR heartbeat keys (followed by the node id, big-endian).
const IVR_LABEL: &[u8] = b"tandem/v1/ivr-heartbeat";
/// The label of a sync key derived from the director heartbeat key.
const SYNC_LABEL: &[u8] = b"tandem/v1/sync";

fn hmac16(key: &[u8; 16], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// The 16 key bytes of IVR `node_id` under the IVR master key.
pub fn ivr_key_bytes(master: &[u8; 16], node_id: u32) -> [u8; 16] {
    hmac16(master, &[IVR_LABEL, &node_id.to_be_bytes()])
}

/// The heartbeat key of IVR `node_id` under the IVR master key: what the
/// director's kernel checks that IVR's heartbeats with, and what the IVR
/// is given (`tandemctl key ivr NODE_ID`).
pub fn ivr_heartbeat_key(master: &[u8; 16], node_id: u32) -> Key {
    Key::from_bytes(&ivr_key_bytes(master, node_id))
}

/// The sync key of a pair whose `[sync]` names none: derived from the
/// director heartbeat key, so the two are different keys that only the
/// directors can compute.
pub fn derived_sync_key(heartbeat: &[u8; 16]) -> [u8; 16] {
    hmac16(heartbeat, &[SYNC_LABEL])
}

/// 16 fresh random bytes from the kernel (`getrandom(2)`): a new key.
pub fn generate() -> std::io::Result<[u8; 16]> {
    let mut key = [0u8; 16];
    let mut filled = 0;
    while filled < key.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `key`.
        let n =
            unsafe { libc::getrandom(key[filled..].as_mut_ptr().cast(), key.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        filled += n as usize;
    }
    Ok(key)
}

/// Writes 16 key bytes as the 32 lowercase hexadecimal digits
/// `tandem.toml` takes (for `tandemctl key`, never for a log).
pub fn to_hex(key: &[u8; 16]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: [u8; 16] = [7; 16];

    #[test]
    fn each_ivr_gets_its_own_key_and_none_is_the_master() {
        let a = ivr_key_bytes(&MASTER, 101);
        let b = ivr_key_bytes(&MASTER, 102);
        assert_ne!(a, b);
        assert_ne!(a, MASTER);
        assert_eq!(a, ivr_key_bytes(&MASTER, 101), "deterministic");
        assert_ne!(a, ivr_key_bytes(&[8; 16], 101), "depends on the master");
    }

    #[test]
    fn the_derived_sync_key_is_not_the_heartbeat_key() {
        let s = derived_sync_key(&MASTER);
        assert_ne!(s, MASTER);
        assert_ne!(s, ivr_key_bytes(&MASTER, 0));
    }

    #[test]
    fn generated_keys_differ() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }

    #[test]
    fn a_secret_never_shows_its_bytes() {
        let s = Secret::new([0xab; 16]);
        assert_eq!(format!("{s:?} {s}"), "(key) (key)");
        assert_eq!(s[0], 0xab);
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        // Key "Jefe", data "what do ya want for nothing?": the first 16 bytes.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let out = mac.finalize().into_bytes();
        assert_eq!(
            to_hex(&out[..16].try_into().unwrap()),
            "5bdcc146bf60754e6a042426089575c7"
        );
    }
}
