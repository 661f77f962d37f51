//! Marks the two tests that need software from outside Cargo as ignored when
//! that software is missing, so `cargo nextest run` counts them as skipped in
//! its summary line instead of reporting a pass (issue 13 item 20):
//!
//! - `roomcast_no_lark_oapi`: python3 cannot import `lark_oapi` (the official
//!   client the fake gateway's conformance test runs);
//! - `roomcast_no_chromium`: no Chromium for the live page's browser test;
//! - `roomcast_no_systemd_analyze`: no `systemd-analyze` to check the unit;
//! - `roomcast_no_prometheus_client`: python3 cannot import
//!   `prometheus_client`, whose OpenMetrics parser checks `/metrics`;
//! - `roomcast_no_python_icalendar`: python3 cannot import `icalendar`,
//!   which parses the `.ics` feed in its test.
//!
//! With `ROOMCAST_CONFORMANCE=required` / `ROOMCAST_BROWSER=required` (as
//! `.ci/run` sets them) the flag is never set: a missing tool is a failure.
//! The build script runs again when the places those tools would be
//! installed change, so installing one later turns its test back on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(roomcast_no_lark_oapi)");
    println!("cargo::rustc-check-cfg=cfg(roomcast_no_chromium)");
    println!("cargo::rustc-check-cfg=cfg(roomcast_no_systemd_analyze)");
    println!("cargo::rustc-check-cfg=cfg(roomcast_no_prometheus_client)");
    println!("cargo::rustc-check-cfg=cfg(roomcast_no_python_icalendar)");
    for var in [
        "ROOMCAST_CONFORMANCE",
        "ROOMCAST_BROWSER",
        "ROOMCAST_CHROMIUM",
        "PATH",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }

    let required = |var: &str| std::env::var(var).as_deref() == Ok("required");

    if !required("ROOMCAST_CONFORMANCE") && !python_imports("lark_oapi") {
        println!("cargo::rustc-cfg=roomcast_no_lark_oapi");
        for dir in python_site_dirs() {
            watch(&dir);
        }
    }
    if !required("ROOMCAST_CONFORMANCE") && !python_imports("prometheus_client") {
        println!("cargo::rustc-cfg=roomcast_no_prometheus_client");
        for dir in python_site_dirs() {
            watch(&dir);
        }
    }
    if !required("ROOMCAST_CONFORMANCE") && !python_imports("icalendar") {
        println!("cargo::rustc-cfg=roomcast_no_python_icalendar");
        for dir in python_site_dirs() {
            watch(&dir);
        }
    }
    if on_path("systemd-analyze").is_none() {
        println!("cargo::rustc-cfg=roomcast_no_systemd_analyze");
        for dir in path_dirs() {
            watch(&dir);
        }
    }
    if !required("ROOMCAST_BROWSER") && chromium().is_none() {
        println!("cargo::rustc-cfg=roomcast_no_chromium");
        for dir in path_dirs() {
            watch(&dir);
        }
    }
}

fn watch(dir: &Path) {
    if dir.is_dir() {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
}

fn python_imports(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where pip puts packages: site-packages / dist-packages on python3's path.
fn python_site_dirs() -> Vec<PathBuf> {
    let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sys, site\nfor p in sys.path + [site.getusersitepackages()]: print(p)",
        ])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with("site-packages") || l.ends_with("dist-packages"))
        .map(PathBuf::from)
        .collect()
}

fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

fn on_path(name: &str) -> Option<PathBuf> {
    path_dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The same lookup as tests/it/browser.rs.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ROOMCAST_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| path_dirs().into_iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}
