//! A `ringtail` with a PLAINTEXT and a SASL_PLAINTEXT listener, for the SASL and ACL tests, and
//! `ringtail users add` as an operator runs it.
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{free_port, try_until_listening, START_ATTEMPTS};

/// A broker with both listeners; killed on drop (its data dir belongs to the caller).
pub struct SaslBroker {
    pub child: Child,
    pub plaintext_port: u16,
    pub sasl_port: u16,
    /// The data dir, kept alive while the broker runs when the broker owns it; a restart takes it.
    pub dir: Option<tempfile::TempDir>,
}

impl Drop for SaslBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ringtail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringtail"))
}

/// `ringtail users add NAME --mechanism M --password-stdin --data-dir DIR`.
pub fn add_user(dir: &Path, name: &str, mechanism: &str, password: &str) {
    let mut child = ringtail()
        .args(["users", "add", name, "--mechanism", mechanism])
        .args(["--password-stdin", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success(), "ringtail users add failed");
}

/// Starts a broker (2 shards unless `extra` says) on `data_dir` with both listeners plus `extra`
/// flags; returns once it listens on both (retried on other ports if another process took one
/// first).
pub fn start_sasl(data_dir: &Path, extra: &[&str]) -> SaslBroker {
    start_sasl_with_env(data_dir, extra, &[])
}

/// [`start_sasl`] with environment variables for the broker (test hooks); `extra` may name its
/// own `--shards`.
pub fn start_sasl_with_env(
    data_dir: &Path,
    extra: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> SaslBroker {
    let mut exits = Vec::new();
    let shards: &[&str] = if extra.contains(&"--shards") {
        &[]
    } else {
        &["--shards", "2"]
    };
    for _ in 0..START_ATTEMPTS {
        let (plaintext_port, sasl_port) = (free_port(), free_port());
        let listeners = format!(
            "PLAINTEXT://127.0.0.1:{plaintext_port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        );
        let mut child = ringtail()
            .args(["--listeners", &listeners])
            .args(shards)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let listening = [plaintext_port, sasl_port]
            .into_iter()
            .try_for_each(|port| try_until_listening(&mut child, port, "broker did not start"));
        match listening {
            Ok(()) => {
                return SaslBroker {
                    child,
                    plaintext_port,
                    sasl_port,
                    dir: None,
                }
            }
            Err(exited) => {
                let _ = child.kill();
                let _ = child.wait();
                exits.push(exited);
            }
        }
    }
    panic!("broker did not start: {exits:?}");
}
