//! The Debian metadata of the package, written the way debhelper would:
//! DEBIAN/control (Depends from `dpkg-shlibdeps`), conffiles, md5sums, the
//! maintainer scripts (the unit registered with `deb-systemd-helper` but
//! neither enabled nor started on install — the example configuration must
//! be edited first — and restarted on upgrade only when it runs), the
//! copyright file, changelog.Debian.gz and the lintian overrides.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{DOC_DIR, PACKAGE, mkdir, output, write_file};

/// The Debian revision of the one packaging of each upstream version.
const REVISION: &str = "1";
const MAINTAINER: &str = "tandem maintainers <maintainers@users.noreply.r-seed-24d50a63.example>";
const DESCRIPTION: &str = "\
high-availability call-center director (XDP dispatch, hot standby)
 tandem runs a hot-standby pair of directors in front of a cluster of IVR
 servers: SIP/RTP calls to a virtual IP are dispatched LVS-style (direct
 routing or NAT) by an eBPF/XDP program, heartbeats are verified in XDP,
 and the standby takes over in milliseconds with the flows, SIP dialogs
 and card calls the active synced to it. It drives telephony cards over
 DAHDI's ioctl ABI.
 .
 This package holds the daemon tandemd, its systemd unit (installed
 disabled), the administration tool tandemctl and an example
 configuration in /etc/tandem/tandem.toml.";

/// What the package's metadata is made of.
pub struct Meta {
    /// `<upstream>-<revision>`.
    pub version: String,
    /// `dpkg --print-architecture`.
    pub arch: String,
    /// The commit's time, RFC 2822 (the changelog's date).
    date: String,
    /// The commit's time in seconds since the epoch (SOURCE_DATE_EPOCH).
    pub epoch: String,
    commit: String,
}

impl Meta {
    /// The upstream version from the workspace; times and commit from git
    /// (from the clock when the tree is not a git checkout).
    pub fn new(ws_root: &Path, upstream: &str) -> Result<Meta> {
        let arch = String::from_utf8_lossy(&output(Command::new("dpkg").arg("--print-architecture"))?)
            .trim()
            .to_owned();
        let git = |format: &str| {
            output(Command::new("git").arg("-C").arg(ws_root).args(["log", "-1", &format!("--format={format}")]))
                .ok()
                .map(|o| String::from_utf8_lossy(&o).trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let now = |arg: &str| -> Result<String> {
            Ok(String::from_utf8_lossy(&output(Command::new("date").arg(arg))?).trim().to_owned())
        };
        let (date, epoch, commit) = match (git("%cD"), git("%ct"), git("%h")) {
            (Some(d), Some(e), Some(c)) => (d, e, format!("commit {c}")),
            _ => (now("-R")?, now("+%s")?, "a tree outside git".to_owned()),
        };
        Ok(Meta {
            version: format!("{upstream}-{REVISION}"),
            arch,
            date,
            epoch,
            commit,
        })
    }
}

/// `Depends:` of the staged binaries, from `dpkg-shlibdeps` run in `work`
/// (which holds debian/control for it and debian/tandem/, the root).
pub fn shlib_depends(work: &Path, bins: &[&str]) -> Result<String> {
    write_file(
        &work.join("debian/control"),
        format!("Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n").as_bytes(),
        0o644,
    )?;
    let mut cmd = Command::new("dpkg-shlibdeps");
    cmd.arg("-O").current_dir(work);
    for bin in bins {
        cmd.arg(format!("-edebian/{PACKAGE}/{bin}"));
    }
    let out = String::from_utf8_lossy(&output(&mut cmd)?).into_owned();
    let depends = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {out:?}"))?;
    Ok(depends.to_owned())
}

/// The maintainer scripts, the copyright file, the changelog and the
/// lintian overrides.
pub fn write_files(root: &Path, meta: &Meta) -> Result<()> {
    let debian = root.join("DEBIAN");
    mkdir(&debian)?;
    for (name, text) in [("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)] {
        write_file(&debian.join(name), text.as_bytes(), 0o755)?;
    }
    let doc = root.join(DOC_DIR);
    write_file(&doc.join("copyright"), COPYRIGHT.as_bytes(), 0o644)?;
    let changelog = format!(
        "{PACKAGE} ({}) unstable; urgency=medium\n\n  * Built by `cargo xtask package` from {}.\n\n -- {MAINTAINER}  {}\n",
        meta.version, meta.commit, meta.date
    );
    let plain = root.join("../changelog.Debian");
    write_file(&plain, changelog.as_bytes(), 0o644)?;
    super::docs::gzip(&plain, &doc.join("changelog.Debian.gz"))?;
    write_file(
        &root.join(format!("usr/share/lintian/overrides/{PACKAGE}")),
        LINTIAN_OVERRIDES.as_bytes(),
        0o644,
    )
}

/// DEBIAN/control, conffiles and md5sums (of every file but the conffiles,
/// as dh_md5sums writes it); call last, once the tree is complete.
pub fn write_control(root: &Path, meta: &Meta, depends: &str, conffiles: &[&str]) -> Result<()> {
    let files = files_under(root)?;
    let mut kib = 0u64;
    for f in &files {
        let len = fs::metadata(root.join(f)).with_context(|| format!("stat {}", f.display()))?.len();
        kib += len.div_ceil(1024);
    }
    let control = format!(
        "Package: {PACKAGE}\nVersion: {}\nArchitecture: {}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {kib}\nDepends: {depends}\nSection: net\nPriority: optional\n\
         Description: {DESCRIPTION}\n",
        meta.version, meta.arch
    );
    let debian = root.join("DEBIAN");
    write_file(&debian.join("control"), control.as_bytes(), 0o644)?;
    let mut list = String::new();
    for c in conffiles {
        if !root.join(c).is_file() {
            bail!("conffile /{c} is not in the staged tree {}", root.display());
        }
        list.push_str(&format!("/{c}\n"));
    }
    write_file(&debian.join("conffiles"), list.as_bytes(), 0o644)?;

    let summed: Vec<&PathBuf> = files.iter().filter(|f| !conffiles.iter().any(|c| Path::new(c) == f.as_path())).collect();
    let mut cmd = Command::new("md5sum");
    cmd.current_dir(root).args(&summed);
    write_file(&debian.join("md5sums"), &output(&mut cmd)?, 0o644)
}

/// Every regular file under `root` outside DEBIAN/, relative, sorted.
fn files_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let path = rel.join(entry.file_name());
            let kind = entry.file_type().with_context(|| format!("stat {}", path.display()))?;
            if kind.is_dir() {
                if path != Path::new("DEBIAN") {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

const POSTINST: &str = r#"#!/bin/sh
# tandem postinst: register tandemd.service with systemd. It is neither
# enabled nor started on install: /etc/tandem/tandem.toml is an example to
# edit first (interfaces, addresses, keys), then `systemctl enable --now
# tandemd`. On an upgrade a running tandemd is restarted with the new binary.
set -e

case "$1" in
configure|abort-upgrade|abort-deconfigure|abort-remove)
    # Record the unit's state without enabling it (as dh_installsystemd --no-enable).
    if command -v deb-systemd-helper >/dev/null 2>&1; then
        deb-systemd-helper update-state 'tandemd.service' >/dev/null || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ] && command -v deb-systemd-invoke >/dev/null 2>&1; then
            deb-systemd-invoke try-restart 'tandemd.service' >/dev/null || true
        fi
    fi
    ;;
esac

exit 0
"#;

const PRERM: &str = r#"#!/bin/sh
# tandem prerm: stop tandemd when the package is removed. SIGINT first:
# it releases the VIPs, detaches XDP and removes its pins (SIGTERM, which
# `stop` sends, would leave the node to a successor that never comes, and
# the peer would take over only when the restart grace ran out). An
# upgrade leaves it running until postinst restarts it with the new
# binary (SIGTERM: the new one adopts the tables, no failover).
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ] && command -v deb-systemd-invoke >/dev/null 2>&1; then
    systemctl kill --signal=SIGINT --kill-whom=main 'tandemd.service' >/dev/null 2>&1 || true
    deb-systemd-invoke stop 'tandemd.service' >/dev/null || true
fi

exit 0
"#;

const POSTRM: &str = r#"#!/bin/sh
# tandem postrm: forget the unit (on purge, also its enablement state).
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ] && command -v deb-systemd-helper >/dev/null 2>&1; then
    deb-systemd-helper purge 'tandemd.service' >/dev/null || true
fi

exit 0
"#;

const LINTIAN_OVERRIDES: &str = "\
# The configuration holds the heartbeat, IVR and sync keys inline, and
# tandemd refuses a key readable by others (SECURITY.md): root only.
tandem: non-standard-file-perm 0600 != 0644 [etc/tandem/tandem.toml]
# Built from the source tree by `cargo xtask package`, not uploaded to
# Debian: there is no ITP bug for the first changelog entry to close.
tandem: initial-upload-closes-no-bugs [usr/share/doc/tandem/changelog.Debian.gz:1]
";

const COPYRIGHT: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tandem
Comment: The binaries link Rust crates statically; each is under its own
 license (MIT, Apache-2.0 or compatible ones), as `cargo metadata` lists.

Files: *
Copyright: 2026 The tandem authors
License: MIT or Apache-2.0

License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the \"Software\"),
 to deal in the Software without restriction, including without limitation
 the rights to use, copy, modify, merge, publish, distribute, sublicense,
 and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included
 in all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS
 OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF
 MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT.
 IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
 CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT,
 TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE
 SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the \"License\"); you may
 not use this file except in compliance with the License. You may obtain
 a copy of the License at
 .
 http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an \"AS IS\" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License 2.0 can be
 found in /usr/share/common-licenses/Apache-2.0.
";
