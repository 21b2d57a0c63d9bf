//! Build-time facts for the report's reproducibility appendix: the git commit the binary was
//! built from, the rustc that built it, the sha256 of Cargo.lock and the versions of the
//! crates whose numerics or output the report depends on.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    // Rebuild when the checked-out commit moves.
    for path in [".git/HEAD", ".git/packed-refs"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(head) = output("git", &["symbolic-ref", "-q", "HEAD"]) {
        let path = format!(".git/{head}");
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");

    let commit = output("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SCALEBOOK_GIT_COMMIT={commit}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["-V"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SCALEBOOK_RUSTC={rustc_version}");

    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let digest = Sha256::digest(lock.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=SCALEBOOK_CARGO_LOCK_SHA256={hex}");
    // `name=version` for the crates that shape results and output, from the lock file.
    let wanted = [
        "candle-core",
        "gemm",
        "polars",
        "plotters",
        "minijinja",
        "mdbook-driver",
    ];
    let mut versions = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), &name)
            && wanted.contains(&n.as_str())
        {
            versions.push(format!("{n}={}", v.trim_matches('"')));
        }
    }
    versions.sort();
    versions.dedup();
    println!(
        "cargo:rustc-env=SCALEBOOK_DEP_VERSIONS={}",
        versions.join(",")
    );
}
