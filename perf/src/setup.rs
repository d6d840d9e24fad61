//! Around a run: building the release gateway binary, writing the report files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::report::Report;

/// Builds `janus-gateway` in release mode in the workspace at `workspace` and returns the
/// binary's path: next to this program's own executable, which is where cargo puts it when
/// both come from the same target directory.
pub fn build_release_gateway(workspace: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("janus-perf: cargo build --release -p janus-gateway");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "janus-gateway",
            "--bin",
            "janus-gateway",
        ])
        .current_dir(workspace)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release -p janus-gateway failed: {status}");
    }
    let exe = std::env::current_exe().context("locating janus-perf")?;
    let dir = exe.parent().context("janus-perf has no parent directory")?;
    let gateway = dir.join("janus-gateway");
    if !gateway.is_file() {
        bail!(
            "built, but {} is missing: build janus-perf with --release into the same target \
             directory, or pass --gateway-bin",
            gateway.display()
        );
    }
    Ok(gateway)
}

/// Where the report went.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.json`.
    pub json: PathBuf,
    /// `REPORT.md`.
    pub markdown: PathBuf,
}

/// Writes `report.json` and `REPORT.md` into `dir`; `ANALYSIS.md` in the same directory, when
/// present, is appended to the markdown as its closing section.
pub fn write_report(report: &Report, dir: &Path) -> anyhow::Result<ReportFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("report.json");
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    std::fs::write(&json, text).with_context(|| format!("writing {}", json.display()))?;
    let analysis = std::fs::read_to_string(dir.join("ANALYSIS.md")).ok();
    let markdown = dir.join("REPORT.md");
    std::fs::write(&markdown, report.markdown(analysis.as_deref()))
        .with_context(|| format!("writing {}", markdown.display()))?;
    Ok(ReportFiles { json, markdown })
}
