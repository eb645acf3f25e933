//! The package's documentation: man pages and shell completions that the
//! staged binaries write from their own clap definitions (`tandemctl
//! generate-docs DIR`, `tandemd --generate-docs DIR`, both hidden), moved
//! to Debian's places, and the README's operator sections with
//! SECURITY.md in /usr/share/doc/tandem.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{CTL_DEST, DAEMON_DEST, DOC_DIR, install_file, mkdir, run, set_mode, write_file};

/// The README sections an operator needs, in the order they are shipped.
pub const OPERATOR_SECTIONS: &[&str] = &[
    "Install from the package",
    "Running on a real server",
    "Changing a running pair",
];

/// Runs each staged binary's generator into `work/docs/<bin>` and installs
/// the pages (gzip -9n) and completions under `root`.
pub fn man_and_completions(root: &Path, work: &Path) -> Result<()> {
    for (bin, generate) in [(CTL_DEST, &["generate-docs"][..]), (DAEMON_DEST, &["--generate-docs"][..])] {
        let exe = root.join(bin);
        let name = exe.file_name().and_then(|n| n.to_str()).context("a binary without a name")?;
        let out = work.join("docs").join(name);
        run(Command::new(&exe).args(generate).arg(&out))?;

        let man = out.join("man");
        let mut pages = 0;
        for entry in fs::read_dir(&man).with_context(|| format!("reading {}", man.display()))? {
            let page = entry.with_context(|| format!("reading {}", man.display()))?.path();
            let file = page.file_name().and_then(|n| n.to_str()).context("a man page without a name")?;
            let section = file.rsplit('.').next().filter(|s| matches!(*s, "1" | "8"));
            let Some(section) = section else {
                bail!("{}: not a section 1 or 8 page", page.display());
            };
            let dst = root.join(format!("usr/share/man/man{section}/{file}.gz"));
            gzip(&page, &dst)?;
            pages += 1;
        }
        if pages == 0 {
            bail!("{} --generate-docs wrote no man page into {}", exe.display(), man.display());
        }
        for (from, to) in [
            (format!("bash/{name}"), format!("usr/share/bash-completion/completions/{name}")),
            (format!("zsh/_{name}"), format!("usr/share/zsh/vendor-completions/_{name}")),
            (format!("fish/{name}.fish"), format!("usr/share/fish/vendor_completions.d/{name}.fish")),
        ] {
            install_file(&out.join(from), &root.join(to), 0o644)?;
        }
    }
    Ok(())
}

/// `gzip -9n` (maximum compression, no name or time stamp: what lintian asks) of `src` into `dst`.
pub fn gzip(src: &Path, dst: &Path) -> Result<()> {
    if let Some(dir) = dst.parent() {
        mkdir(dir)?;
    }
    let file = fs::File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    run(Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(src)
        .stdout(Stdio::from(file)))?;
    set_mode(dst, 0o644)
}

/// README.md's [`OPERATOR_SECTIONS`] (under the README's title) and
/// SECURITY.md, which they refer to, into the package's doc directory.
pub fn operator_docs(ws_root: &Path, root: &Path) -> Result<()> {
    let readme_path = ws_root.join("README.md");
    let readme = fs::read_to_string(&readme_path).with_context(|| format!("reading {}", readme_path.display()))?;
    let text = operator_part(&readme).with_context(|| format!("{}", readme_path.display()))?;
    write_file(&root.join(DOC_DIR).join("README.md"), text.as_bytes(), 0o644)?;
    install_file(&ws_root.join("SECURITY.md"), &root.join(DOC_DIR).join("SECURITY.md"), 0o644)
}

/// The operator's part of the README: a title, then each of
/// [`OPERATOR_SECTIONS`] whole (a `## ` heading up to the next one outside
/// a code fence). A missing section is an error naming it.
pub fn operator_part(readme: &str) -> Result<String> {
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut fence = false;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
        }
        if !fence && let Some(title) = line.strip_prefix("## ") {
            sections.push((title.trim().to_owned(), String::new()));
        }
        if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let mut out = String::from(
        "# tandem: operating a director\n\n\
         The operator's sections of tandem's README (the whole README, with the\n\
         design, the tests and the benchmarks, is in the source tree).\n\n",
    );
    for want in OPERATOR_SECTIONS {
        let Some((_, body)) = sections.iter().find(|(t, _)| t == want) else {
            bail!("no `## {want}` section (the package ships it as the operator's documentation)");
        };
        out.push_str(body.trim_end());
        out.push_str("\n\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::operator_part;

    #[test]
    fn operator_part_takes_whole_sections_and_ignores_headings_in_fences() {
        let readme = "# tandem\nintro\n\n## Running on a real server\nrun it\n```sh\n## not a heading\n```\n\
                      ## Lab\nlab stuff\n## Install from the package\napt install\n\
                      ## Changing a running pair\nreload\n## Benchmarks\nfast\n";
        let part = operator_part(readme).unwrap();
        let install = part.find("## Install from the package").unwrap();
        let running = part.find("## Running on a real server").unwrap();
        let changing = part.find("## Changing a running pair").unwrap();
        assert!(install < running && running < changing, "{part}");
        assert!(part.contains("## not a heading"), "{part}");
        assert!(!part.contains("lab stuff") && !part.contains("fast") && !part.contains("intro"), "{part}");
    }

    #[test]
    fn a_missing_operator_section_is_named() {
        let err = operator_part("# t\n## Running on a real server\nx\n").unwrap_err();
        assert!(err.to_string().contains("Install from the package"), "{err}");
    }
}
