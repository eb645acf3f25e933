//! `cargo xtask test`: setup, `cargo build`, then `cargo test --no-fail-fast`,
//! both at the workspace root without `--workspace`, so they cover the
//! default members (not `ebpf/`, which only builds for BPF), streaming the
//! test output through while adding up libtest's `test result:` lines into
//! one closing summary line.
//!
//! As root it sets `TANDEM_REQUIRE_PRIVILEGED=1`, so a privileged test that
//! cannot run fails instead of skipping. Every test target of those members
//! runs, the lab tests in `control/tests/` among them; setup has installed
//! what they need (`ip`, SIPp, and `promtool`, which the metrics test
//! requires under `TANDEM_REQUIRE_PRIVILEGED=1`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result};

pub fn run(args: &[OsString]) -> Result<ExitCode> {
    crate::setup::run()?;

    println!("xtask: cargo build (default members)");
    let status = crate::cargo()
        .arg("build")
        .status()
        .context("starting cargo build")?;
    if !status.success() {
        println!("xtask: cargo build failed ({status}); no test was run");
        return Ok(crate::exit_code(status));
    }

    let mut cmd = crate::cargo();
    cmd.args(["test", "--no-fail-fast"]).args(args);
    if crate::is_root() {
        cmd.env("TANDEM_REQUIRE_PRIVILEGED", "1");
        println!("xtask: cargo test --no-fail-fast (root: TANDEM_REQUIRE_PRIVILEGED=1)");
    } else {
        println!("xtask: cargo test --no-fail-fast (not root: privileged tests will skip)");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut totals = Totals::default();
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        let mut out = std::io::stdout();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .context("reading cargo test output")?;
            if n == 0 {
                break;
            }
            // Best effort: a closed stdout must not stop the test run.
            let _ = out.write_all(&line);
            let _ = out.flush();
            totals.add_line(&String::from_utf8_lossy(&line));
        }
    }
    let status = child.wait().context("waiting for cargo test")?;

    println!(
        "xtask: {} test suites reported; cargo test {}",
        totals.suites,
        if status.success() {
            "succeeded".to_owned()
        } else {
            format!("failed ({status})")
        }
    );
    if !status.success() && totals.failed == 0 {
        println!("xtask: cargo test failed outside any test (a build error?): see above");
    }
    println!(
        "summary: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    Ok(crate::exit_code(status))
}

/// Sums of libtest's `test result: ok. 3 passed; 0 failed; 1 ignored; ...` lines.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    suites: u64,
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result:") else {
            return;
        };
        self.suites += 1;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Totals;

    #[test]
    fn sums_libtest_result_lines() {
        let mut t = Totals::default();
        t.add_line("test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n");
        t.add_line("test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s");
        t.add_line("running 7 tests");
        t.add_line("test foo ... ok");
        assert_eq!(
            t,
            Totals {
                suites: 2,
                passed: 8,
                failed: 2,
                ignored: 1
            }
        );
    }
}
