//! Man pages (`clap_mangen`) and shell completions (`clap_complete`) written
//! from a binary's own clap definition, for `cargo xtask package`.
//!
//! Each binary keeps its `Cli` struct; it parses with [`with_generator`]
//! around `Cli::command()`, which adds one hidden entry point (a
//! `generate-docs DIR` subcommand when the command has subcommands, a
//! `--generate-docs DIR` option when it has none), and when
//! [`requested`] finds it, hands `Cli::command()` itself — without the
//! hidden entry — to [`generate`]. That way the pages and the completions
//! never mention the generator (clap_complete lists hidden subcommands and
//! options), and a generated page cannot drift from the parser. This
//! module writes files into the directory it is given and nothing else.

use std::{
    io,
    path::{Path, PathBuf},
};

use clap::{Arg, ArgMatches, Command};
use clap_complete::Shell;

/// The hidden entry point's name: `tandemctl generate-docs DIR`, `tandemd --generate-docs DIR`.
pub const GENERATE_DOCS: &str = "generate-docs";

/// The shells completions are written for, and each one's file name for a binary.
const SHELLS: [(Shell, &str); 3] = [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")];

/// `cmd` with the hidden generator added; parse with it, build the
/// documentation from `cmd` alone.
pub fn with_generator(cmd: Command) -> Command {
    let dir = Arg::new(GENERATE_DOCS)
        .value_name("DIR")
        .value_parser(clap::value_parser!(PathBuf));
    if cmd.has_subcommands() {
        cmd.subcommand(
            Command::new(GENERATE_DOCS)
                .hide(true)
                .about("Write the man pages and shell completions into DIR (packaging)")
                .arg(dir.required(true)),
        )
    } else {
        cmd.arg(dir.long(GENERATE_DOCS).hide(true))
    }
}

/// The directory the hidden generator was asked to write into, if it was.
pub fn requested(matches: &ArgMatches) -> Option<PathBuf> {
    let m = match matches.subcommand() {
        Some((GENERATE_DOCS, sub)) => sub,
        _ => matches,
    };
    m.try_get_one::<PathBuf>(GENERATE_DOCS).ok().flatten().cloned()
}

/// Writes `DIR/man/<name>.<section>` for `cmd` and for every visible
/// subcommand, nested ones included (`tandemctl-service-add.1`), and
/// `DIR/bash/<name>`, `DIR/zsh/_<name>`, `DIR/fish/<name>.fish`; returns
/// the paths written. An error names the file it could not write.
pub fn generate(cmd: Command, section: &str, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_owned();
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();

    let mut written = Vec::new();
    let man_dir = dir.join("man");
    create_dir(&man_dir)?;
    let mut pages = Vec::new();
    collect_pages(&cmd, &mut pages);
    for page in pages {
        let man = clap_mangen::Man::new(page)
            .section(section)
            .source(format!("tandem {version}"))
            .manual("tandem");
        let path = man_dir.join(man.get_filename());
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        write_file(&path, &buf)?;
        written.push(path);
    }

    for (shell, shell_dir) in SHELLS {
        let file = match shell {
            Shell::Zsh => format!("_{name}"),
            Shell::Fish => format!("{name}.fish"),
            _ => name.clone(),
        };
        let sub = dir.join(shell_dir);
        create_dir(&sub)?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut buf);
        let path = sub.join(file);
        write_file(&path, &buf)?;
        written.push(path);
    }
    Ok(written)
}

/// `cmd` and its visible subcommands, depth first (each page lists its
/// own subcommands; `help` is disabled, so none is a page of its own).
fn collect_pages(cmd: &Command, out: &mut Vec<Command>) {
    out.push(cmd.clone());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_pages(sub, out);
    }
}

fn create_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))
}

fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::write(path, bytes)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Command {
        Command::new("sample")
            .version("1.2.3")
            .about("A sample")
            .arg(Arg::new("verbose").long("verbose").action(clap::ArgAction::SetTrue))
            .subcommand(
                Command::new("service")
                    .about("Services")
                    .subcommand(Command::new("add").about("Add one")),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn generator_is_found_and_normal_use_is_not_mistaken_for_it() {
        let m = with_generator(sample()).try_get_matches_from(["sample", GENERATE_DOCS, "/tmp/x"]).unwrap();
        assert_eq!(requested(&m), Some(PathBuf::from("/tmp/x")));
        let m = with_generator(sample()).try_get_matches_from(["sample", "service", "add"]).unwrap();
        assert_eq!(requested(&m), None);

        let flat = Command::new("flat").arg(Arg::new("check").long("check").action(clap::ArgAction::SetTrue));
        let m = with_generator(flat.clone()).try_get_matches_from(["flat", "--generate-docs", "d"]).unwrap();
        assert_eq!(requested(&m), Some(PathBuf::from("d")));
        let m = with_generator(flat).try_get_matches_from(["flat", "--check"]).unwrap();
        assert_eq!(requested(&m), None);
    }

    #[test]
    fn pages_for_nested_subcommands_and_completions_without_hidden_ones() {
        let dir = std::env::temp_dir().join(format!("tandem-clidoc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = generate(sample(), "8", &dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "man/sample.8",
                "man/sample-service.8",
                "man/sample-service-add.8",
                "bash/sample",
                "zsh/_sample",
                "fish/sample.fish"
            ]
        );
        let page = std::fs::read_to_string(dir.join("man/sample.8")).unwrap();
        assert!(page.contains(".TH sample 8"), "{page}");
        assert!(page.contains("verbose"), "{page}");
        assert!(!page.contains("secret"), "{page}");
        let bash = std::fs::read_to_string(dir.join("bash/sample")).unwrap();
        assert!(bash.contains("service") && bash.contains("--verbose"), "{bash}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
