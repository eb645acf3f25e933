//! DAHDI's `/etc/dahdi/system.conf`, read as `dahdi_cfg` reads it, for a
//! `[[card]]` with `system_conf`: the spans it configures (`span=`), the
//! signalling of each channel (`bchan=`, `dchan=`, `fxsks=`, …), their echo
//! cancellers (`echocanceller=`) and the tone zones (`loadzone=`,
//! `defaultzone=`). tandem takes its span list and each span's line and
//! channel configuration from here, so the file `dahdi_cfg` applies and the
//! configuration tandem re-applies on a takeover are one and the same.
//!
//! This module owns the parsing ([`parse`], on text) and reading ([`load`])
//! of the file; it refuses what `dahdi_cfg` refuses and what tandem does
//! not model (a keyword it does not know, grouped HDLC channels, CAS idle
//! bits, dynamic spans, radio settings), a channel or span configured
//! twice, and a `defaultzone=` that no `loadzone=` loads, each as a
//! [`SystemConfError`] naming the file, the line and what is wrong. It
//! does not talk to a card: [`crate::cards`] applies what it read.
//!
//! Syntax (as `dahdi_cfg`): one `keyword=value` per line, keywords in any
//! case, `#` starts a comment, blank lines are skipped; channel lists are
//! comma-separated numbers and `first-last` ranges (1..=1023).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tandem_hw::abi;

/// The highest channel number a channel list may name (`DAHDI_MAX_CHANNELS - 1`).
const MAX_CHANNEL: i32 = abi::DAHDI_MAX_CHANNELS - 1;
/// The highest `span=` timing priority `dahdi_cfg` takes (`MAX_TIMING`).
const MAX_TIMING: u32 = 255;

/// A `system.conf` as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemConf {
    /// The file it was read from.
    pub path: PathBuf,
    /// `span=` lines, in file order.
    pub spans: Vec<SystemSpan>,
    /// Every channel a signalling line configures, by channel number.
    pub channels: BTreeMap<i32, SystemChannel>,
    /// `loadzone=` zones, in file order (`dahdi_cfg` loads `us` when there are none).
    pub tone_zones: Vec<String>,
    /// `defaultzone=`.
    pub default_zone: Option<String>,
}

/// One `span=<span>,<timing>,<lbo>,<framing>,<coding>[,crc4|yellow|nt|te|term…]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemSpan {
    pub number: u32,
    /// Timing source priority (0: never a timing source).
    pub timing: u32,
    /// Line build-out, 0..=7.
    pub lbo: i32,
    /// `DAHDI_CONFIG_*` framing, coding and option bits.
    pub line_config: i32,
}

/// One configured channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemChannel {
    /// `DAHDI_SIG_*`.
    pub signalling: i32,
    /// `echocanceller=` name for it, if any.
    pub echo_canceller: Option<String>,
    /// The line that configured it.
    pub line: usize,
}

/// A line of the file that cannot be taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {problem}", path.display())]
pub struct SystemConfError {
    pub path: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    pub problem: String,
}

/// Channel signalling keywords, with their `DAHDI_SIG_*` (0: `unused`).
const SIGNALLING: [(&str, i32); 14] = [
    ("e&m", abi::DAHDI_SIG_EM),
    ("e&me1", abi::DAHDI_SIG_EM_E1),
    ("fxsls", abi::DAHDI_SIG_FXSLS),
    ("fxsgs", abi::DAHDI_SIG_FXSGS),
    ("fxsks", abi::DAHDI_SIG_FXSKS),
    ("fxols", abi::DAHDI_SIG_FXOLS),
    ("fxogs", abi::DAHDI_SIG_FXOGS),
    ("fxoks", abi::DAHDI_SIG_FXOKS),
    ("bchan", abi::DAHDI_SIG_CLEAR),
    ("indclear", abi::DAHDI_SIG_CLEAR),
    ("dchan", abi::DAHDI_SIG_HDLCFCS),
    ("hardhdlc", abi::DAHDI_SIG_HARDHDLC),
    ("mtp2", abi::DAHDI_SIG_MTP2),
    ("unused", 0),
];

/// Keywords `dahdi_cfg` knows that tandem does not model, and why.
const NOT_MODELLED: [(&str, &str); 11] = [
    ("clear", "groups channels into one HDLC link"),
    ("rawhdlc", "groups channels into one HDLC link"),
    ("nethdlc", "groups channels into one HDLC link"),
    ("fcshdlc", "groups channels into one HDLC link"),
    ("cas", "sets CAS idle bits"),
    ("dacs", "cross-connects channels"),
    ("dacsrbs", "cross-connects channels"),
    ("56k", "sets 56 kbit/s HDLC"),
    ("dynamic", "creates a dynamic span"),
    ("channel", "selects channels for radio settings"),
    ("channels", "selects channels for radio settings"),
];

/// Read and parse the file at `path`.
pub fn load(path: &Path) -> Result<SystemConf, SystemConfError> {
    let text = std::fs::read_to_string(path).map_err(|e| SystemConfError {
        path: path.to_owned(),
        line: 0,
        problem: format!("cannot be read: {e}"),
    })?;
    parse(path, &text)
}

/// Parse the text of a `system.conf` read from `path` (named in errors).
pub fn parse(path: &Path, text: &str) -> Result<SystemConf, SystemConfError> {
    let mut conf = SystemConf {
        path: path.to_owned(),
        spans: Vec::new(),
        channels: BTreeMap::new(),
        tone_zones: Vec::new(),
        default_zone: None,
    };
    let mut echo: BTreeMap<i32, String> = BTreeMap::new();
    let mut default_line = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fail = |problem: String| SystemConfError {
            path: path.to_owned(),
            line,
            problem,
        };
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            return Err(fail(format!("`{content}` is not <keyword>=<value>")));
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(fail(format!("`{content}` is not <keyword>=<value>")));
        }
        match key.as_str() {
            "span" => {
                let span = parse_span(value).map_err(fail)?;
                if conf.spans.iter().any(|s| s.number == span.number) {
                    return Err(fail(format!("span {} is configured twice", span.number)));
                }
                conf.spans.push(span);
            }
            "echocanceller" => {
                let mut parts = value.split(',');
                let name = parts.next().unwrap_or("").trim();
                if name.is_empty() || name.len() > 15 {
                    return Err(fail(format!(
                        "echo canceller name `{name}` must be 1 to 15 characters"
                    )));
                }
                let rest: Vec<&str> = parts.collect();
                if rest.is_empty() {
                    return Err(fail(format!("echocanceller={value} names no channels")));
                }
                for list in rest {
                    for channel in channel_list(list).map_err(&fail)? {
                        echo.insert(channel, name.to_string());
                    }
                }
            }
            "loadzone" => {
                let zone = zone_name(value).map_err(&fail)?;
                if !conf.tone_zones.contains(&zone) {
                    conf.tone_zones.push(zone);
                }
            }
            "defaultzone" => {
                conf.default_zone = Some(zone_name(value).map_err(&fail)?);
                default_line = line;
            }
            _ => {
                if let Some((_, why)) = NOT_MODELLED.iter().find(|(k, _)| *k == key) {
                    return Err(fail(format!("`{key}=` {why}: tandem does not model it")));
                }
                let Some(&(_, signalling)) = SIGNALLING.iter().find(|(k, _)| *k == key) else {
                    return Err(fail(format!("unknown keyword `{key}`")));
                };
                for channel in channel_list(value).map_err(&fail)? {
                    if let Some(before) = conf.channels.get(&channel) {
                        return Err(fail(format!(
                            "channel {channel} is already configured on line {}",
                            before.line
                        )));
                    }
                    if signalling != 0 {
                        conf.channels.insert(
                            channel,
                            SystemChannel {
                                signalling,
                                echo_canceller: None,
                                line,
                            },
                        );
                    }
                }
            }
        }
    }
    if let Some(zone) = &conf.default_zone
        && !conf.tone_zones.contains(zone)
    {
        return Err(SystemConfError {
            path: path.to_owned(),
            line: default_line,
            problem: format!("defaultzone={zone}: no loadzone= line loads it"),
        });
    }
    for (channel, name) in echo {
        // dahdi_cfg attaches echo cancellers to configured channels only.
        if let Some(ch) = conf.channels.get_mut(&channel) {
            ch.echo_canceller = Some(name);
        }
    }
    Ok(conf)
}

fn parse_span(value: &str) -> Result<SystemSpan, String> {
    let args: Vec<&str> = value.split(',').map(str::trim).collect();
    if !(5..=9).contains(&args.len()) {
        return Err(format!(
            "span={value}: should be <span>,<timing>,<lbo>,<framing>,<coding>[,crc4|yellow|nt|te|term…]"
        ));
    }
    let number: u32 = args[0]
        .parse()
        .ok()
        .filter(|n| (1..=abi::DAHDI_MAX_SPANS as u32).contains(n))
        .ok_or_else(|| {
            format!(
                "span number `{}` is not 1 to {}",
                args[0],
                abi::DAHDI_MAX_SPANS
            )
        })?;
    let timing: u32 = args[1]
        .parse()
        .ok()
        .filter(|t| *t <= MAX_TIMING)
        .ok_or_else(|| format!("timing `{}` is not 0 to {MAX_TIMING}", args[1]))?;
    let lbo: i32 = args[2]
        .parse()
        .ok()
        .filter(|l| (0..=7).contains(l))
        .ok_or_else(|| format!("line build-out `{}` is not 0 to 7", args[2]))?;
    let mut line_config = match args[3].to_ascii_lowercase().as_str() {
        "d4" => abi::DAHDI_CONFIG_D4,
        "esf" => abi::DAHDI_CONFIG_ESF,
        "ccs" => abi::DAHDI_CONFIG_CCS,
        "cas" => 0,
        other => return Err(format!("framing `{other}` is not d4, esf, cas or ccs")),
    };
    line_config |= match args[4].to_ascii_lowercase().as_str() {
        "ami" => abi::DAHDI_CONFIG_AMI,
        "b8zs" => abi::DAHDI_CONFIG_B8ZS,
        "hdb3" => abi::DAHDI_CONFIG_HDB3,
        other => return Err(format!("coding `{other}` is not ami, b8zs or hdb3")),
    };
    for option in &args[5..] {
        match option.to_ascii_lowercase().as_str() {
            "crc4" => line_config |= abi::DAHDI_CONFIG_CRC4,
            "yellow" => line_config |= abi::DAHDI_CONFIG_NOTOPEN,
            "nt" => line_config |= abi::DAHDI_CONFIG_NTTE,
            "te" => line_config &= !abi::DAHDI_CONFIG_NTTE,
            "term" => line_config |= abi::DAHDI_CONFIG_TERM,
            other => {
                return Err(format!(
                    "span option `{other}` is not crc4, yellow, nt, te or term"
                ));
            }
        }
    }
    Ok(SystemSpan {
        number,
        timing,
        lbo,
        line_config,
    })
}

/// A channel list: `1-15,17-31`, `16`, …
fn channel_list(list: &str) -> Result<Vec<i32>, String> {
    let number = |text: &str| {
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|n| (1..=MAX_CHANNEL).contains(n))
            .ok_or_else(|| {
                format!(
                    "channel `{}` is not a number from 1 to {MAX_CHANNEL}",
                    text.trim()
                )
            })
    };
    let mut channels = Vec::new();
    for item in list.split(',') {
        match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if first > last {
                    return Err(format!(
                        "range `{}` should start before it ends",
                        item.trim()
                    ));
                }
                channels.extend(first..=last);
            }
            None => channels.push(number(item)?),
        }
    }
    Ok(channels)
}

/// A tone zone name (libtonezone's country codes, e.g. `us`, `nl`).
fn zone_name(value: &str) -> Result<String, String> {
    if value.len() > 39
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "tone zone `{value}` is not a zone name (like `us` or `nl`)"
        ));
    }
    Ok(value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
