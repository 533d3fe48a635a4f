//! A broker process for one run: Ringtail or a peer, started on a free loopback port with its
//! output in a log file, waited for until it answers Kafka requests, stopped with SIGTERM (SIGKILL
//! after a grace period). The matrix loops over [`BrokerKind`]s; a peer whose binary is absent is
//! [`BrokerError::NotInstalled`], which says how to install it, so the matrix can skip it.
//!
//! How each broker is started (the command line is also the first line of its log):
//! - `ringtail --listen 127.0.0.1:PORT --data-dir DIR… EXTRA…`
//! - `tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url
//!   tcp://127.0.0.1:PORT --storage-engine sqlite://tansu.db EXTRA…`, run in the data dir (tansu
//!   resolves the sqlite path against its working directory, so the database lands on the
//!   layout's disk), or `--storage-engine memory://tansu/` (no data dir; needs its `dynostore`
//!   feature). tansu 0.6.0 does not create a topic on produce or metadata: a run must create its
//!   topics (CreateTopics) first.
//! - `scripts/kafka-peer.sh run --listen 127.0.0.1:PORT --data-dir DIR EXTRA…` for Apache Kafka:
//!   the script formats DIR as a single-node KRaft log dir and execs the JVM (`kafka.Kafka`, 1 GiB
//!   heap) with `config/kafka/server.properties` plus the per-run lines, which it writes to
//!   `DIR/server.properties` and prints at the top of the log. Being exec'd, the JVM keeps the
//!   script's pid, so its CPU is measured like any other broker's.
//!
//! # Invariants worth naming
//! - A [`BrokerProcess`] is handed out only once its own pid listens on the port and an
//!   ApiVersions round trip succeeded there, so a run never measures some other process that
//!   took the port first.
//! - A broker never outlives its [`BrokerProcess`]: dropping one kills and reaps the process.
//!   (If the loadgen itself is SIGKILLed the broker is orphaned; it stays in the loadgen's process
//!   group, so a Ctrl-C on the terminal reaches it too.)

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{cpu, probe, sys};

/// How tansu stores data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TansuStorage {
    /// SQLite through libsql, a file in the data dir (its `libsql` feature).
    Sqlite,
    /// In memory (its `dynostore` feature): no disk at all.
    Memory,
}

/// A broker the matrix can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
#[non_exhaustive]
pub enum BrokerKind {
    Ringtail,
    /// tansu (github.com/tansu-io/tansu), a Kafka-compatible broker in Rust.
    Tansu(TansuStorage),
    /// Apache Kafka (KRaft, one node), started by `scripts/kafka-peer.sh` from Maven Central jars.
    Kafka,
}

impl BrokerKind {
    /// The brokers a matrix compares by default: Ringtail, Apache Kafka, and tansu on its durable
    /// local storage.
    pub fn standard() -> Vec<BrokerKind> {
        vec![
            BrokerKind::Ringtail,
            BrokerKind::Kafka,
            BrokerKind::Tansu(TansuStorage::Sqlite),
        ]
    }

    /// Name in labels and reports: `ringtail`, `kafka`, `tansu-sqlite`, `tansu-memory`.
    pub fn name(&self) -> &'static str {
        match self {
            BrokerKind::Ringtail => "ringtail",
            BrokerKind::Kafka => "kafka",
            BrokerKind::Tansu(TansuStorage::Sqlite) => "tansu-sqlite",
            BrokerKind::Tansu(TansuStorage::Memory) => "tansu-memory",
        }
    }

    /// Whether the broker keeps its data in the data dir (tansu in memory does not).
    pub fn uses_data_dir(&self) -> bool {
        !matches!(self, BrokerKind::Tansu(TansuStorage::Memory))
    }

    /// Where the binary is unless told otherwise: Ringtail's release build in the workspace this
    /// loadgen was built from; tansu where `install_hint` puts it.
    pub fn default_binary(&self) -> PathBuf {
        match self {
            BrokerKind::Ringtail => {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/ringtail")
            }
            BrokerKind::Tansu(_) => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                Path::new(&home).join(".cache/ringtail/tansu/bin/tansu")
            }
            BrokerKind::Kafka => {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka-peer.sh")
            }
        }
    }

    /// The command that installs the binary at `default_binary`.
    pub fn install_hint(&self) -> &'static str {
        match self {
            BrokerKind::Ringtail => "cargo build --release -p ringtail-server",
            BrokerKind::Tansu(_) => {
                "cargo install --root ~/.cache/ringtail/tansu tansu --features dynostore,libsql"
            }
            BrokerKind::Kafka => "bash scripts/kafka-peer.sh fetch",
        }
    }

    /// Whether `status` after SIGTERM is a clean stop: exit 0, or for the JVM 143 (128 + SIGTERM),
    /// which it returns after its shutdown hooks ran (Kafka's controlled shutdown among them).
    pub fn stopped_cleanly(&self, status: ExitStatus) -> bool {
        status.success() || (*self == BrokerKind::Kafka && status.code() == Some(JVM_SIGTERM_EXIT))
    }

    /// How long the broker may take to answer after it starts: a JVM that first formats its log
    /// dir (a JVM of its own) takes seconds where the native brokers take milliseconds.
    pub fn ready_timeout(&self) -> Duration {
        match self {
            BrokerKind::Kafka => READY_TIMEOUT_JVM,
            _ => READY_TIMEOUT_DEFAULT,
        }
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BrokerKind {
    type Err = String;

    /// The names of [`BrokerKind::name`]; plain `tansu` means its sqlite storage.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ringtail" => Ok(BrokerKind::Ringtail),
            "tansu" | "tansu-sqlite" => Ok(BrokerKind::Tansu(TansuStorage::Sqlite)),
            "tansu-memory" => Ok(BrokerKind::Tansu(TansuStorage::Memory)),
            "kafka" => Ok(BrokerKind::Kafka),
            other => Err(format!(
                "unknown broker {other:?}; known: ringtail, kafka, tansu-sqlite (tansu), tansu-memory"
            )),
        }
    }
}

impl From<BrokerKind> for String {
    fn from(kind: BrokerKind) -> String {
        kind.name().to_string()
    }
}

impl TryFrom<String> for BrokerKind {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("skipped: {kind} not installed at {}; install with: {install}", path.display())]
    NotInstalled {
        kind: BrokerKind,
        path: PathBuf,
        install: &'static str,
    },
    #[error("{kind} needs a data dir")]
    NoDataDir { kind: BrokerKind },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("starting {}: {source}", binary.display())]
    Spawn { binary: PathBuf, source: io::Error },
    #[error("{kind} exited before answering ({status}); {} ends:\n{log_tail}", log.display())]
    ExitedEarly {
        kind: BrokerKind,
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("{kind} not ready on {addr} after {waited:?} ({last_problem}); {} ends:\n{log_tail}", log.display())]
    NotReady {
        kind: BrokerKind,
        addr: SocketAddr,
        waited: Duration,
        last_problem: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("signalling {kind} (pid {pid}): {source}")]
    Signal {
        kind: BrokerKind,
        pid: u32,
        source: io::Error,
    },
    #[error("waiting for {kind} (pid {pid}): {source}")]
    Wait {
        kind: BrokerKind,
        pid: u32,
        source: io::Error,
    },
}

impl BrokerError {
    /// A broker that is not there to run (as opposed to one that failed).
    pub fn is_skip(&self) -> bool {
        matches!(self, BrokerError::NotInstalled { .. })
    }
}

/// The binary of `kind`: `explicit` if given, else [`BrokerKind::default_binary`]; an error that
/// names the install command when it is not an existing file.
pub fn locate(kind: BrokerKind, explicit: Option<&Path>) -> Result<PathBuf, BrokerError> {
    let path = explicit.map_or_else(|| kind.default_binary(), Path::to_path_buf);
    // The Kafka script is always there; Kafka's jars are there once fetched, which `check` says
    // without touching the network.
    let installed = path.is_file()
        && (kind != BrokerKind::Kafka
            || Command::new(&path)
                .arg("check")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success()));
    if installed {
        return Ok(path);
    }
    Err(BrokerError::NotInstalled {
        kind,
        path,
        install: kind.install_hint(),
    })
}

/// Everything needed to start one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSpec {
    pub kind: BrokerKind,
    pub binary: PathBuf,
    /// Ringtail gets each as a `--data-dir`; tansu on sqlite runs in the first (the others are
    /// unused); tansu in memory ignores them.
    pub data_dirs: Vec<PathBuf>,
    /// Appended to the command line, e.g. `--flush every_batch` and a layout's broker args.
    pub extra_args: Vec<String>,
    /// The run's output dir; the log is `broker-<name>.log` in it.
    pub output_dir: PathBuf,
    /// How long the broker may take to answer after it starts.
    pub ready_timeout: Duration,
}

impl BrokerSpec {
    pub fn new(
        kind: BrokerKind,
        binary: PathBuf,
        data_dirs: Vec<PathBuf>,
        output_dir: PathBuf,
    ) -> Self {
        Self {
            kind,
            binary,
            data_dirs,
            extra_args: Vec::new(),
            output_dir,
            ready_timeout: kind.ready_timeout(),
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.output_dir
            .join(format!("broker-{}.log", self.kind.name()))
    }

    /// The arguments for a broker listening on `port` (the binary not included).
    pub fn args(&self, port: u16) -> Vec<String> {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut args = match self.kind {
            BrokerKind::Ringtail => {
                let mut args = vec!["--listen".to_string(), listen.to_string()];
                for dir in &self.data_dirs {
                    args.push("--data-dir".to_string());
                    args.push(dir.to_string_lossy().into_owned());
                }
                args
            }
            BrokerKind::Tansu(storage) => {
                let url = format!("tcp://{listen}");
                let engine = match storage {
                    TansuStorage::Sqlite => "sqlite://tansu.db",
                    TansuStorage::Memory => "memory://tansu/",
                };
                [
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ]
                .into_iter()
                .chain(["--storage-engine", engine])
                .map(str::to_string)
                .collect()
            }
            BrokerKind::Kafka => vec![
                "run".to_string(),
                "--listen".to_string(),
                listen.to_string(),
                "--data-dir".to_string(),
                self.data_dirs[0].to_string_lossy().into_owned(),
            ],
        };
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The broker's working directory: tansu's sqlite file is resolved against it, so the data
    /// dir; for the others the output dir (nothing should land there).
    fn working_dir(&self) -> &Path {
        match self.kind {
            BrokerKind::Tansu(TansuStorage::Sqlite) => &self.data_dirs[0],
            _ => &self.output_dir,
        }
    }
}

/// A JVM's exit code once its shutdown hooks ran after SIGTERM.
const JVM_SIGTERM_EXIT: i32 = 128 + 15;
/// Time a broker gets to answer after it starts, unless the spec says otherwise.
pub const READY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// The same for a JVM broker (format, then start; both compete with the loadgen for 2 cores).
pub const READY_TIMEOUT_JVM: Duration = Duration::from_secs(90);
/// Time a broker gets to exit after SIGTERM, unless the caller says otherwise.
pub const STOP_GRACE_DEFAULT: Duration = Duration::from_secs(20);
/// Starts tried when the broker exits early saying the port was taken (the free port is only
/// free until someone else binds it).
const START_ATTEMPTS_MAX: u32 = 3;
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Lines of the broker's log quoted in an error.
const LOG_TAIL_LINES: usize = 20;

/// A running broker. Stop it with [`BrokerProcess::stop`]; dropping it kills it.
#[derive(Debug)]
pub struct BrokerProcess {
    kind: BrokerKind,
    /// `None` once reaped.
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    log_path: PathBuf,
    apis: Vec<probe::ApiRange>,
}

/// How a broker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// It exited within the grace period after SIGTERM.
    Terminated { status: ExitStatus, after: Duration },
    /// It ignored SIGTERM for the whole grace period and was killed.
    Killed { grace: Duration },
    /// It had exited already (a crash, or stopped by someone else).
    AlreadyExited { status: ExitStatus },
}

impl BrokerProcess {
    /// Starts the broker and waits until it answers on its port (see the module's invariants).
    pub fn start(spec: &BrokerSpec) -> Result<Self, BrokerError> {
        if spec.kind.uses_data_dir() && spec.data_dirs.is_empty() {
            return Err(BrokerError::NoDataDir { kind: spec.kind });
        }
        locate(spec.kind, Some(&spec.binary))?;
        fs::create_dir_all(&spec.output_dir).map_err(io_error(&spec.output_dir))?;
        let mut attempt = 1;
        loop {
            match Self::start_once(spec) {
                Err(BrokerError::ExitedEarly { log_tail, .. })
                    if attempt < START_ATTEMPTS_MAX && port_was_taken(&log_tail) =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(spec: &BrokerSpec) -> Result<Self, BrokerError> {
        let port = free_loopback_port().map_err(io_error(Path::new("127.0.0.1:0")))?;
        let args = spec.args(port);
        let log_path = spec.log_path();
        let log = open_log(&log_path, &spec.binary, &args)?;
        let stderr = log.try_clone().map_err(io_error(&log_path))?;
        let child = Command::new(&spec.binary)
            .args(&args)
            .current_dir(spec.working_dir())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|source| BrokerError::Spawn {
                binary: spec.binary.clone(),
                source,
            })?;
        let mut process = BrokerProcess {
            kind: spec.kind,
            pid: child.id(),
            child: Some(child),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log_path,
            apis: Vec::new(),
        };
        // On an error `process` drops here, which kills the child.
        process.apis = process.wait_ready(spec.ready_timeout)?;
        Ok(process)
    }

    /// Polls until our pid listens on the port and answers ApiVersions there.
    fn wait_ready(&mut self, timeout: Duration) -> Result<Vec<probe::ApiRange>, BrokerError> {
        let started = Instant::now();
        let mut last_problem = "not yet probed".to_string();
        while started.elapsed() < timeout {
            if let Some(status) = self.try_wait()? {
                return Err(BrokerError::ExitedEarly {
                    kind: self.kind,
                    status: status.to_string(),
                    log: self.log_path.clone(),
                    log_tail: log_tail(&self.log_path),
                });
            }
            match cpu::pid_listening_on(self.addr.port()) {
                Ok(Some(pid)) if pid == self.pid => {
                    match probe::api_versions(self.addr, PROBE_TIMEOUT) {
                        Ok(apis) => return Ok(apis),
                        Err(error) => last_problem = error.to_string(),
                    }
                }
                Ok(Some(pid)) => last_problem = format!("port held by pid {pid}, not ours"),
                Ok(None) => last_problem = "not listening yet".to_string(),
                Err(error) => last_problem = error.to_string(),
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Err(BrokerError::NotReady {
            kind: self.kind,
            addr: self.addr,
            waited: started.elapsed(),
            last_problem,
            log: self.log_path.clone(),
            log_tail: log_tail(&self.log_path),
        })
    }

    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, for a workload's `bootstrap`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The APIs and versions the broker listed when it became ready.
    pub fn apis(&self) -> &[probe::ApiRange] {
        &self.apis
    }

    /// Whether the process still runs (reaps it if it exited).
    pub fn is_running(&mut self) -> Result<bool, BrokerError> {
        Ok(self.child.is_some() && self.try_wait()?.is_none())
    }

    /// SIGTERM, then up to `grace` for the broker to exit, then SIGKILL.
    pub fn stop(mut self, grace: Duration) -> Result<StopOutcome, BrokerError> {
        if let Some(status) = self.try_wait()? {
            return Ok(StopOutcome::AlreadyExited { status });
        }
        // try_wait said it runs and it is not reaped, so the pid is still our child's.
        sys::send_sigterm(self.pid).map_err(|source| BrokerError::Signal {
            kind: self.kind,
            pid: self.pid,
            source,
        })?;
        let signalled = Instant::now();
        while signalled.elapsed() < grace {
            if let Some(status) = self.try_wait()? {
                return Ok(StopOutcome::Terminated {
                    status,
                    after: signalled.elapsed(),
                });
            }
            std::thread::sleep(POLL_INTERVAL.min(grace));
        }
        self.kill()?;
        Ok(StopOutcome::Killed { grace })
    }

    /// The exit status if the child exited (then reaped and forgotten), `None` while it runs.
    fn try_wait(&mut self) -> Result<Option<ExitStatus>, BrokerError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait().map_err(|source| BrokerError::Wait {
            kind: self.kind,
            pid: self.pid,
            source,
        })?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    fn kill(&mut self) -> Result<(), BrokerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let wait_error = |source| BrokerError::Wait {
            kind: self.kind,
            pid: self.pid,
            source,
        };
        // kill fails only when the child already exited; wait reaps it either way.
        let _ = child.kill();
        child.wait().map_err(wait_error)?;
        Ok(())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            eprintln!("ringtail-loadgen: {error}");
        }
    }
}

/// A loopback port nobody listens on right now (the kernel's pick for port 0).
fn free_loopback_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Opens the log for appending (several starts of one broker in one run dir stay readable) and
/// writes the command line first, so the log says how to reproduce the run.
fn open_log(path: &Path, binary: &Path, args: &[String]) -> Result<File, BrokerError> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))?;
    writeln!(log, "== {} {}", binary.display(), args.join(" ")).map_err(io_error(path))?;
    Ok(log)
}

/// The last lines of a log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) => return format!("(log unreadable: {error})"),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn port_was_taken(log_tail: &str) -> bool {
    let text = log_tail.to_lowercase();
    text.contains("address already in use") || text.contains("addrinuse")
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BrokerError + '_ {
    move |source| BrokerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
#[path = "broker_process_tests.rs"]
mod tests;
