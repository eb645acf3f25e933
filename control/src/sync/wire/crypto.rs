//! The sync protocol's cryptography: the pre-shared [`SyncKey`] (and,
//! during a key rotation, the next one: [`SyncKeys`], [`KeyRing`]), the keys
//! the handshake derives from it ([`HandshakeKeys`]: one to MAC handshake
//! frames, one for the proofs), the proofs each end makes over the
//! [`Transcript`], and the per-direction [`Cipher`] that seals every frame
//! after the handshake with ChaCha20-Poly1305.
//!
//! Pure functions and values: nothing here does I/O, reads a clock or
//! draws randomness (the caller brings fresh [`Nonce`]s). No key byte is
//! ever printed: every type holding one has a redacted `Debug` and wipes
//! its bytes when dropped.
//!
//! # Derivations
//! - `HKDF-SHA256(salt = "tandem/sync/v2", ikm = sync key)`, expanded with
//!   the info `"frame mac"` → the handshake frames' MAC key (HMAC-SHA256,
//!   16-byte tag), `"proof"` → the proof key, `"session"` → the session
//!   secret.
//! - Proof of `role`: HMAC-SHA256 under the proof key of
//!   `"tandem/sync/v2 proof" ‖ role ‖ transcript`, 32 bytes.
//! - Session keys: `HKDF-SHA256(salt = subscriber nonce ‖ publisher nonce,
//!   ikm = session secret)`, expanded with `"publisher to subscriber" ‖
//!   transcript` and `"subscriber to publisher" ‖ transcript`, 32 bytes each.
//! - A sealed frame: the body encrypted in place, the 32-byte header as
//!   associated data, the AEAD nonce `0u32 ‖ frame counter (u64, big-endian)`
//!   counted per direction from 0: a frame replayed, reordered or dropped
//!   makes the next one fail to open.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tandem_common::heartbeat::Key;
use zeroize::Zeroize;

use super::{Error, HEADER_LEN, Role, TAG_LEN};

/// Bytes of a handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a proof of the key.
pub const PROOF_LEN: usize = 32;

const KDF_SALT: &[u8] = b"tandem/sync/v2";
const PROOF_LABEL: &[u8] = b"tandem/sync/v2 proof";

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8; 32]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

/// The pair's sync pre-shared key (`sync.key`), 16 bytes.
#[derive(Clone)]
pub struct SyncKey([u8; 16]);

impl SyncKey {
    pub fn new(bytes: [u8; 16]) -> SyncKey {
        SyncKey(bytes)
    }

    /// The handshake's keys, derived from this one.
    pub fn handshake_keys(&self) -> HandshakeKeys {
        let kdf = Hkdf::<Sha256>::new(Some(KDF_SALT), &self.0);
        let mut keys = HandshakeKeys {
            mac: MacKey([0; 32]),
            proof: [0; 32],
            session: [0; 32],
        };
        // 32 bytes is far below HKDF-SHA256's limit of 8,160.
        let _ = kdf.expand(b"frame mac", &mut keys.mac.0);
        let _ = kdf.expand(b"proof", &mut keys.proof);
        let _ = kdf.expand(b"session", &mut keys.session);
        keys
    }
}

impl From<[u8; 16]> for SyncKey {
    fn from(bytes: [u8; 16]) -> SyncKey {
        SyncKey(bytes)
    }
}

/// The 16 bytes of a SipHash key (a key configured as the heartbeat's).
impl From<Key> for SyncKey {
    fn from(k: Key) -> SyncKey {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&k.k0.to_le_bytes());
        b[8..].copy_from_slice(&k.k1.to_le_bytes());
        SyncKey(b)
    }
}

impl core::fmt::Debug for SyncKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SyncKey(redacted)")
    }
}

impl Drop for SyncKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A node's sync keys during a key rotation: the current one, under
/// which it makes its handshake frames and proofs, and the next one, under
/// which the peer's are taken too (a peer that already moved to it).
/// Outside a rotation, the current one alone.
#[derive(Clone, Debug)]
pub struct SyncKeys {
    pub current: SyncKey,
    pub next: Option<SyncKey>,
}

impl SyncKeys {
    pub fn new(current: impl Into<SyncKey>, next: Option<[u8; 16]>) -> SyncKeys {
        SyncKeys {
            current: current.into(),
            next: next.map(SyncKey::new),
        }
    }

    /// The handshake's keys of each.
    pub fn handshake_keys(&self) -> KeyRing {
        KeyRing {
            current: self.current.handshake_keys(),
            next: self.next.as_ref().map(SyncKey::handshake_keys),
        }
    }
}

impl From<SyncKey> for SyncKeys {
    fn from(current: SyncKey) -> SyncKeys {
        SyncKeys {
            current,
            next: None,
        }
    }
}

impl From<[u8; 16]> for SyncKeys {
    fn from(bytes: [u8; 16]) -> SyncKeys {
        SyncKey::new(bytes).into()
    }
}

impl From<Key> for SyncKeys {
    fn from(k: Key) -> SyncKeys {
        SyncKey::from(k).into()
    }
}

/// Which of a node's sync keys verified a handshake frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySlot {
    Current,
    Next,
}

/// The [`HandshakeKeys`] of each of a node's [`SyncKeys`].
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: HandshakeKeys,
    next: Option<HandshakeKeys>,
}

impl KeyRing {
    /// What this end makes its frames and proofs under.
    pub fn current(&self) -> &HandshakeKeys {
        &self.current
    }

    /// The keys of `slot` (None: no next key).
    pub fn get(&self, slot: KeySlot) -> Option<&HandshakeKeys> {
        match slot {
            KeySlot::Current => Some(&self.current),
            KeySlot::Next => self.next.as_ref(),
        }
    }

    /// Every key, the current one first.
    pub fn slots(&self) -> impl Iterator<Item = (KeySlot, &HandshakeKeys)> {
        std::iter::once((KeySlot::Current, &self.current))
            .chain(self.next.as_ref().map(|k| (KeySlot::Next, k)))
    }
}

impl From<HandshakeKeys> for KeyRing {
    fn from(current: HandshakeKeys) -> KeyRing {
        KeyRing {
            current,
            next: None,
        }
    }
}

/// The key of the handshake frames' MAC (HMAC-SHA256, truncated to
/// [`TAG_LEN`] bytes).
#[derive(Clone)]
pub struct MacKey([u8; 32]);

impl MacKey {
    pub fn new(bytes: [u8; 32]) -> MacKey {
        MacKey(bytes)
    }

    /// The tag of `bytes` (a frame's header and body).
    pub fn tag(&self, bytes: &[u8]) -> [u8; TAG_LEN] {
        let mut m = hmac(&self.0);
        m.update(bytes);
        let full = m.finalize().into_bytes();
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&full[..TAG_LEN]);
        t
    }

    /// Does `tag` authenticate `bytes`? (In constant time.)
    pub fn verify(&self, bytes: &[u8], tag: &[u8]) -> bool {
        let mut m = hmac(&self.0);
        m.update(bytes);
        tag.len() == TAG_LEN && m.verify_truncated_left(tag).is_ok()
    }
}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MacKey(redacted)")
    }
}

impl Drop for MacKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A fresh random value each end draws per connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; NONCE_LEN]);

impl Nonce {
    pub const fn new(bytes: [u8; NONCE_LEN]) -> Nonce {
        Nonce(bytes)
    }
}

/// A fixed, known nonce made from a number: for tests and benchmarks that
/// want reproducible runs. The daemon draws [`NONCE_LEN`] random bytes.
impl From<u64> for Nonce {
    fn from(v: u64) -> Nonce {
        let mut b = [0u8; NONCE_LEN];
        b[..8].copy_from_slice(&v.to_be_bytes());
        Nonce(b)
    }
}

impl core::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Public on the wire; the first bytes are enough to tell two apart.
        write!(f, "Nonce({:02x?}…)", &self.0[..4])
    }
}

/// What both proofs and the session keys are bound to: the protocol, both
/// node ids and both nonces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transcript {
    pub protocol: u16,
    pub subscriber: u32,
    pub publisher: u32,
    pub subscriber_nonce: Nonce,
    pub publisher_nonce: Nonce,
}

impl Transcript {
    fn bytes(&self) -> [u8; 10 + 2 * NONCE_LEN] {
        let mut b = [0u8; 10 + 2 * NONCE_LEN];
        b[..2].copy_from_slice(&self.protocol.to_be_bytes());
        b[2..6].copy_from_slice(&self.subscriber.to_be_bytes());
        b[6..10].copy_from_slice(&self.publisher.to_be_bytes());
        b[10..10 + NONCE_LEN].copy_from_slice(&self.subscriber_nonce.0);
        b[10 + NONCE_LEN..].copy_from_slice(&self.publisher_nonce.0);
        b
    }
}

/// The keys a handshake uses, derived from the [`SyncKey`].
#[derive(Clone)]
pub struct HandshakeKeys {
    mac: MacKey,
    proof: [u8; 32],
    session: [u8; 32],
}

impl HandshakeKeys {
    /// The handshake frames' MAC key.
    pub fn mac(&self) -> &MacKey {
        &self.mac
    }

    /// The proof that the end playing `prover` holds the key, over `t`.
    pub fn proof(&self, prover: Role, t: &Transcript) -> [u8; PROOF_LEN] {
        let mut m = hmac(&self.proof);
        m.update(PROOF_LABEL);
        m.update(&[prover as u8]);
        m.update(&t.bytes());
        m.finalize().into_bytes().into()
    }

    /// Does `proof` show that the end playing `prover` holds the key, for
    /// this transcript? (In constant time.)
    pub fn check_proof(&self, prover: Role, t: &Transcript, proof: &[u8; PROOF_LEN]) -> bool {
        let mut m = hmac(&self.proof);
        m.update(PROOF_LABEL);
        m.update(&[prover as u8]);
        m.update(&t.bytes());
        m.verify_slice(proof).is_ok()
    }

    /// The two directions' ciphers of the session `t` describes, as the
    /// end playing `own` uses them.
    pub fn session(&self, own: Role, t: &Transcript) -> Ciphers {
        let mut salt = [0u8; 2 * NONCE_LEN];
        salt[..NONCE_LEN].copy_from_slice(&t.subscriber_nonce.0);
        salt[NONCE_LEN..].copy_from_slice(&t.publisher_nonce.0);
        let kdf = Hkdf::<Sha256>::new(Some(&salt), &self.session);
        let tb = t.bytes();
        let derive = |label: &[u8]| {
            let mut k = [0u8; 32];
            let _ = kdf.expand_multi_info(&[label, &tb], &mut k);
            let c = Cipher::new(&k);
            k.zeroize();
            c
        };
        let to_sub = derive(b"publisher to subscriber");
        let to_pub = derive(b"subscriber to publisher");
        match own {
            Role::Publisher => Ciphers {
                send: to_sub,
                recv: to_pub,
            },
            Role::Subscriber => Ciphers {
                send: to_pub,
                recv: to_sub,
            },
        }
    }
}

impl core::fmt::Debug for HandshakeKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HandshakeKeys(redacted)")
    }
}

impl Drop for HandshakeKeys {
    fn drop(&mut self) {
        self.proof.zeroize();
        self.session.zeroize();
    }
}

/// One direction of a session: ChaCha20-Poly1305 under its key, with the
/// count of frames sealed (or opened) so far as the nonce.
pub struct Cipher {
    aead: ChaCha20Poly1305,
    counter: u64,
}

impl Cipher {
    fn new(key: &[u8; 32]) -> Cipher {
        Cipher {
            aead: ChaCha20Poly1305::new(key.into()),
            counter: 0,
        }
    }

    fn nonce(&self) -> chacha20poly1305::Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.counter.to_be_bytes());
        n.into()
    }

    /// Frames sealed or opened so far.
    pub fn frames(&self) -> u64 {
        self.counter
    }

    /// Seals a frame in place: `frame` holds the header (body length set)
    /// and the plain body; the body is encrypted and the tag appended.
    pub fn seal(&mut self, frame: &mut Vec<u8>) {
        let nonce = self.nonce();
        let (header, body) = frame.split_at_mut(HEADER_LEN);
        // Fails only for a body over 256 GiB; frames are at most 64 KiB.
        let tag = self
            .aead
            .encrypt_in_place_detached(&nonce, header, body)
            .unwrap_or_default();
        frame.extend_from_slice(&tag);
        self.counter += 1;
    }

    /// Opens a whole frame in place (header, ciphertext body, tag): the
    /// body is decrypted. Fails if the frame was not sealed under this
    /// key as the next frame of this direction; the body is then garbage.
    pub fn open(&mut self, frame: &mut [u8]) -> Result<(), Error> {
        if frame.len() < HEADER_LEN + TAG_LEN {
            return Err(Error::Truncated {
                field: "sealed frame",
                need: HEADER_LEN + TAG_LEN,
                got: frame.len(),
            });
        }
        let nonce = self.nonce();
        let (rest, tag) = frame.split_at_mut(frame.len() - TAG_LEN);
        let (header, body) = rest.split_at_mut(HEADER_LEN);
        let tag = Tag::clone_from_slice(tag);
        self.aead
            .decrypt_in_place_detached(&nonce, header, body, &tag)
            .map_err(|_| Error::BadMac)?;
        self.counter += 1;
        Ok(())
    }
}

impl core::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Cipher {{ key: redacted, frames: {} }}", self.counter)
    }
}

/// Both directions of a session, as one end uses them.
#[derive(Debug)]
pub struct Ciphers {
    pub send: Cipher,
    pub recv: Cipher,
}
