//! The leaf values of `tandem.toml`: newtypes that check what they read
//! (ranges, addresses, names, words of a vocabulary) and write themselves
//! back in the file's form.
//!
//! Each leaf reads the raw TOML value first, so that a refusal can show the
//! value as it was written (`"fast" is not an integer`). The refusal travels
//! through serde as a custom error message: the value, [`SEP`], then the
//! problem; [`super::read`] splits it again and adds the field path. Checks
//! that need more than one value (duplicates, cross-references) belong to
//! [`super::validate`], not here.

use std::{
    fmt,
    marker::PhantomData,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, DeserializeOwned, Error as _, MapAccess, SeqAccess, Visitor},
};
use tandem_dataplane::{
    AttachMode, RealState,
    common::{Forward, Scheduler},
    config::Protocol,
};
use toml::Value;

use super::{FLAG_NAMES, LINECONFIG_NAMES, SIGNALLING_NAMES};

/// Between the value and the problem in a leaf's error message. TOML
/// escapes control characters in strings, so a rendered value never holds it.
pub(super) const SEP: char = '\u{1f}';

/// The error a leaf returns: `value` as TOML, then what is wrong with it.
pub(super) fn refuse<E: de::Error>(value: &Value, problem: impl fmt::Display) -> E {
    E::custom(format_args!("{value}{SEP}{problem}"))
}

/// `s` as the file would write it (`"svc0"`), for messages.
pub(super) fn quoted(s: &str) -> String {
    Value::from(s).to_string()
}

fn raw<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Value::deserialize(d)
}

fn string<E: de::Error>(v: &Value) -> Result<&str, E> {
    v.as_str().ok_or_else(|| refuse(v, "is not a string"))
}

/// Implements `Serialize` by writing `self.0` (or what `$f` makes of it).
macro_rules! serialize_as {
    ($t:ty, |$s:ident| $e:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                let $s = self;
                $e.serialize(ser)
            }
        }
    };
}

/// An integer between `MIN` and `MAX` (inclusive), held as `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Int<T, const MIN: i64, const MAX: i64>(pub T);

impl<'de, T: TryFrom<i64>, const MIN: i64, const MAX: i64> Deserialize<'de> for Int<T, MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        let n = v
            .as_integer()
            .ok_or_else(|| refuse(&v, "is not an integer"))?;
        if n < MIN {
            return Err(refuse(&v, format_args!("is below the minimum {MIN}")));
        }
        if n > MAX {
            return Err(refuse(&v, format_args!("is above the maximum {MAX}")));
        }
        T::try_from(n)
            .map(Int)
            .map_err(|_| refuse(&v, format_args!("is above the maximum {MAX}")))
    }
}

impl<T: Serialize, const MIN: i64, const MAX: i64> Serialize for Int<T, MIN, MAX> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(ser)
    }
}

/// A duration written in whole milliseconds (`*_ms`), between `MIN` and `MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Millis<const MIN: i64, const MAX: i64>(pub Duration);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Millis<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let Int(ms) = Int::<u64, MIN, MAX>::deserialize(d)?;
        Ok(Millis(Duration::from_millis(ms)))
    }
}

impl<const MIN: i64, const MAX: i64> Serialize for Millis<MIN, MAX> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        (self.0.as_millis() as u64).serialize(ser)
    }
}

impl<const MIN: i64, const MAX: i64> Millis<MIN, MAX> {
    pub fn ms(ms: u64) -> Self {
        Millis(Duration::from_millis(ms))
    }
}

/// `true` or `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Bool(pub bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        v.as_bool()
            .map(Bool)
            .ok_or_else(|| refuse(&v, "is not true or false"))
    }
}
serialize_as!(Bool, |b| b.0);

/// Any string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        string(&v).map(|s| Text(s.to_string()))
    }
}
serialize_as!(Text, |t| t.0);

/// A string that passes `check`, else refused with `problem`.
fn checked<'de, D: Deserializer<'de>>(
    d: D,
    check: impl FnOnce(&str) -> bool,
    problem: &str,
) -> Result<String, D::Error> {
    let v = raw(d)?;
    let s = string(&v)?;
    if check(s) {
        Ok(s.to_string())
    } else {
        Err(refuse(&v, problem))
    }
}

/// `[node] name`: 1 to 64 printable characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeName(pub String);

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ok = |s: &str| !s.is_empty() && s.len() <= 64 && !s.chars().any(|c| c.is_control());
        checked(d, ok, "is not a node name (1 to 64 printable characters)").map(NodeName)
    }
}
serialize_as!(NodeName, |n| n.0);

/// A network interface name as the kernel takes it (IFNAMSIZ is 16 with
/// the terminating NUL; no `/`, `:` or white space).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfName(pub String);

impl<'de> Deserialize<'de> for IfName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        let ok = v.as_str().filter(|s| {
            !s.is_empty()
                && s.len() <= 15
                && !s
                    .chars()
                    .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        });
        ok.map(|s| IfName(s.to_string()))
            .ok_or_else(|| refuse(&v, "is not an interface name"))
    }
}
serialize_as!(IfName, |n| n.0);

/// An absolute path (`card.root`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsPath(pub String);

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ok = |s: &str| s.starts_with('/') && !s.chars().any(|c| c.is_control());
        checked(d, ok, "is not an absolute path").map(AbsPath)
    }
}
serialize_as!(AbsPath, |p| p.0);

fn unicast<E: de::Error>(v: &Value) -> Result<IpAddr, E> {
    let ip: IpAddr = v
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| refuse(v, "is not an IP address"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(refuse(v, "is not a unicast address"));
    }
    Ok(ip)
}

/// A unicast IPv4 or IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unicast(pub IpAddr);

impl<'de> Deserialize<'de> for Unicast {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        unicast(&raw(d)?).map(Unicast)
    }
}
serialize_as!(Unicast, |a| a.0.to_string());

/// A unicast IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnicastV4(pub Ipv4Addr);

impl<'de> Deserialize<'de> for UnicastV4 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        match unicast(&v)? {
            IpAddr::V4(a) => Ok(UnicastV4(a)),
            IpAddr::V6(_) => Err(refuse(&v, "is not an IPv4 address")),
        }
    }
}
serialize_as!(UnicastV4, |a| a.0.to_string());

/// An address of `[sync] local` / `peer`: neither unspecified nor multicast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncAddr(pub IpAddr);

impl<'de> Deserialize<'de> for SyncAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        v.as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .filter(|a| !a.is_unspecified() && !a.is_multicast())
            .map(SyncAddr)
            .ok_or_else(|| refuse(&v, "is not a unicast IP address"))
    }
}
serialize_as!(SyncAddr, |a| a.0.to_string());

/// `address:port` to listen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        v.as_str()
            .and_then(|s| s.parse().ok())
            .map(ListenAddr)
            .ok_or_else(|| refuse(&v, "is not an address:port to listen on"))
    }
}
serialize_as!(ListenAddr, |a| a.0.to_string());

/// A unicast MAC address, `02:00:00:00:00:21`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        let mac = v
            .as_str()
            .filter(|s| s.len() == 17)
            .and_then(tandem_dataplane::parse_mac)
            .ok_or_else(|| refuse(&v, "is not a MAC address"))?;
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(refuse(&v, "is not a unicast MAC address"));
        }
        Ok(Mac(mac))
    }
}
serialize_as!(Mac, |m| tandem_dataplane::fmt_mac(&m.0));

/// A key written inline: 16 bytes as 32 hexadecimal digits, not all zero.
/// Never shown: a refusal says what is wrong without the digits, `Debug`
/// prints `(key)`, and a configuration written out for others to read
/// carries [`Key::Hidden`] instead.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Bytes([u8; 16]),
    /// Written as [`HIDDEN_KEY`]; never read back (it is not hexadecimal).
    Hidden,
}

/// What a hidden key is written as.
pub const HIDDEN_KEY: &str = "(not shown)";

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("(key)")
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        let text = string(&v)?;
        // The value is a secret: the refusal describes it, never repeats it.
        let shown = format!("(a key of {} characters, not shown)", text.chars().count());
        let refuse = |problem: &str| D::Error::custom(format_args!("{shown}{SEP}{problem}"));
        match parse_key(text) {
            None => Err(refuse(
                "is not a 16-byte key written as 32 hexadecimal digits",
            )),
            Some(k) if k == [0; 16] => Err(refuse("is all zeros: not a secret")),
            Some(k) => Ok(Key::Bytes(k)),
        }
    }
}

impl Serialize for Key {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            Key::Bytes(k) => crate::keys::to_hex(k).serialize(ser),
            Key::Hidden => HIDDEN_KEY.serialize(ser),
        }
    }
}

/// 32 hexadecimal digits as 16 bytes (also the content of a key file).
pub(super) fn parse_key(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// An enum the dataplane owns, written by its serde name (`"wrr"`).
pub trait Vocabulary: Serialize + DeserializeOwned + Copy {
    /// What a word outside the vocabulary is told.
    fn problem() -> String;
}

impl Vocabulary for Scheduler {
    fn problem() -> String {
        let names: Vec<&str> = Scheduler::ALL.iter().map(|s| s.name()).collect();
        format!("is not a scheduler ({})", names.join(", "))
    }
}

impl Vocabulary for Protocol {
    fn problem() -> String {
        "is not udp or tcp".into()
    }
}

impl Vocabulary for Forward {
    fn problem() -> String {
        "is not dr or nat".into()
    }
}

impl Vocabulary for RealState {
    fn problem() -> String {
        "is not up, draining or down".into()
    }
}

/// `[dataplane] xdp_mode`: the words of [`AttachMode`] the file takes
/// (AttachMode itself has no serde names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    Native,
    Generic,
    Auto,
}

impl Vocabulary for XdpMode {
    fn problem() -> String {
        "is not one of native, generic, auto".into()
    }
}

impl From<XdpMode> for AttachMode {
    fn from(m: XdpMode) -> AttachMode {
        match m {
            XdpMode::Native => AttachMode::Native,
            XdpMode::Generic => AttachMode::Generic,
            XdpMode::Auto => AttachMode::Auto,
        }
    }
}

impl From<AttachMode> for XdpMode {
    fn from(m: AttachMode) -> XdpMode {
        match m {
            AttachMode::Native => XdpMode::Native,
            AttachMode::Generic => XdpMode::Generic,
            AttachMode::Auto => XdpMode::Auto,
        }
    }
}

/// A word of the vocabulary `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Word<T>(pub T);

impl<'de, T: Vocabulary> Deserialize<'de> for Word<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        string::<D::Error>(&v)?;
        T::deserialize(v.clone())
            .map(Word)
            .map_err(|_| refuse(&v, T::problem()))
    }
}

impl<T: Vocabulary> Serialize for Word<T> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(ser)
    }
}

/// A name of one of the tables of names in `super` ([`FLAG_NAMES`], ...).
fn named<'de, D: Deserializer<'de>, V: Copy>(
    d: D,
    names: &[(&str, V)],
    problem: &str,
) -> Result<V, D::Error> {
    let v = raw(d)?;
    v.as_str()
        .and_then(|s| names.iter().find(|(n, _)| *n == s))
        .map(|(_, bits)| *bits)
        .ok_or_else(|| {
            let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            refuse(&v, format_args!("{problem} ({})", list.join(", ")))
        })
}

fn name_of<V: PartialEq>(names: &[(&'static str, V)], value: &V) -> Option<&'static str> {
    names.iter().find(|(_, v)| v == value).map(|(n, _)| *n)
}

/// A service flag, a name of [`FLAG_NAMES`]; holds its bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlagName(pub u16);

impl<'de> Deserialize<'de> for FlagName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named(d, &FLAG_NAMES, "is not a flag").map(FlagName)
    }
}
serialize_as!(FlagName, |f| name_of(&FLAG_NAMES, &f.0).unwrap_or_default());

/// A framing or coding word of `card.lineconfig` ([`LINECONFIG_NAMES`]); holds its bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineWord(pub i32);

impl<'de> Deserialize<'de> for LineWord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named(d, &LINECONFIG_NAMES, "is not a framing or coding word").map(LineWord)
    }
}
serialize_as!(LineWord, |w| name_of(&LINECONFIG_NAMES, &w.0)
    .unwrap_or_default());

/// `card.signalling`, a name of [`SIGNALLING_NAMES`]; holds its `DAHDI_SIG_*` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signalling(pub i32);

impl<'de> Deserialize<'de> for Signalling {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named(d, &SIGNALLING_NAMES, "is not a signalling").map(Signalling)
    }
}
serialize_as!(Signalling, |s| name_of(&SIGNALLING_NAMES, &s.0)
    .unwrap_or(super::DEFAULT_SIGNALLING));

/// A span number of `card.spans`, 1 to `DAHDI_MAX_SPANS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub u32);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = raw(d)?;
        let n = v
            .as_integer()
            .ok_or_else(|| refuse(&v, "is not an integer"))?;
        let max = tandem_hw::abi::DAHDI_MAX_SPANS as i64;
        if !(1..=max).contains(&n) {
            return Err(refuse(
                &v,
                format_args!("is not a span number (1 to {max})"),
            ));
        }
        Ok(Span(n as u32))
    }
}
serialize_as!(Span, |s| s.0);

/// What a list of these is called when the file gives something else.
pub trait Item {
    const LIST: &'static str;
}

impl Item for FlagName {
    const LIST: &'static str = "is not a list of flag names";
}
impl Item for LineWord {
    const LIST: &'static str = "is not a list of framing and coding words";
}
impl Item for IfName {
    const LIST: &'static str = "is not a list of interface names";
}
impl Item for Span {
    const LIST: &'static str = "is not a list of span numbers";
}
impl Item for SyncAddr {
    const LIST: &'static str = "is not a list of IP addresses";
}

/// A TOML array of `T` (an array of tables for the sections: `[[vip]]`).
/// Elements are read through the caller's deserializer, so an error in one
/// is named by its index (`service[1].real[0].weight`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(ser)
    }
}

impl<'de, T: Deserialize<'de> + Item> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor {
            one: false,
            item: PhantomData,
        })
        .map(List)
    }
}

/// A list of `T`, or a single `T` standing for a list of one (`[sync] peer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(ser)
    }
}

impl<'de, T: Deserialize<'de> + Item> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor {
            one: true,
            item: PhantomData,
        })
        .map(OneOrMany)
    }
}

/// Reads an array element by element; anything else is refused with
/// `T::LIST`, or read as one `T` when `one` is set.
struct ListVisitor<T> {
    one: bool,
    item: PhantomData<T>,
}

impl<'de, T: Deserialize<'de> + Item> ListVisitor<T> {
    fn other<E: de::Error>(self, v: Value) -> Result<Vec<T>, E> {
        if !self.one {
            return Err(refuse(&v, T::LIST));
        }
        // The element's own refusal, already in the `value SEP problem` form.
        T::deserialize(v)
            .map(|t| vec![t])
            .map_err(|e| E::custom(e.message()))
    }
}

impl<'de, T: Deserialize<'de> + Item> Visitor<'de> for ListVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<T>, E> {
        self.other(Value::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<T>, E> {
        self.other(Value::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<T>, E> {
        self.other(i64::try_from(v).map_or(Value::Float(v as f64), Value::Integer))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<T>, E> {
        self.other(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
        self.other(Value::String(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
        let v = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.other(v)
    }
}
