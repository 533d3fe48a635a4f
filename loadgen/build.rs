//! Records `git describe --always --dirty` of the source tree as `RINGTAIL_LOADGEN_GIT_DESCRIBE`,
//! so every report can say which loadgen produced it ("unknown" outside a git checkout, e.g. a
//! crate tarball, or when git is missing).
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let describe = git(&manifest_dir, &["describe", "--always", "--dirty"])
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=RINGTAIL_LOADGEN_GIT_DESCRIBE={describe}");

    // Rerun when the commit or the index moves (a commit, a checkout, `git add`) and when any
    // loadgen file changes (it may turn the tree dirty or clean). Edits elsewhere in the
    // workspace are not watched: rebuilding the loadgen for each would cost more than a stale
    // "-dirty" is worth.
    // A path that does not exist (a packed ref) is left out: cargo would rerun on every build.
    let mut watched = vec!["HEAD".to_string(), "index".to_string()];
    watched.extend(git(&manifest_dir, &["symbolic-ref", "-q", "HEAD"]));
    for name in &watched {
        if let Some(path) = git(&manifest_dir, &["rev-parse", "--git-path", name]) {
            let path = Path::new(&manifest_dir).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rerun-if-changed={manifest_dir}");
}

/// The trimmed stdout of a successful git command run in `dir`; `None` on any failure.
fn git(dir: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
