//! The control channel: a Unix socket taking one command per line, answering one line each.
//!
//! | command | effect | answer |
//! |---|---|---|
//! | `power-loss` | everything not durable is dropped | `ok dropped_ops=N kept_ops=0 dropped_inodes=N` |
//! | `power-loss tear SEED` | the same, each file keeping a seeded in-order prefix of its queued writes, torn at a sector boundary | `ok dropped_ops=N kept_ops=N dropped_inodes=N` |
//! | `fail-fsync on` / `off` | every fsync fails with EIO and drops what it would have synced | `ok` |
//! | `fail-write on` / `off` | every write and growing fallocate fails with ENOSPC | `ok` |
//! | `stats` | | `ok writes=N fsyncs=N dir_fsyncs=N fsync_errors=N power_losses=N dropped_ops=N torn_kept_ops=N fsyncs_after_error=N open_files=N` |
//! | `quit` | the filesystem is unmounted and the process exits | `ok` |
//!
//! Anything else is answered `error <reason>`. Lose power only once `open_files` is 0: the
//! model is consistent at any instant, but a writer still running would go on writing after the
//! "power loss". A SIGKILLed process's io_uring outlives it for a moment (the ring is torn down
//! asynchronously, and a write it handed to an io-wq worker still arrives), so waiting for the
//! process is not enough; its files are released only when nothing can write through them.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

use crate::model::{Model, SplitMix64};

/// Bytes of one command line, at most: a longer line is refused.
const COMMAND_BYTES_MAX: usize = 256;

/// What the caller should do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Quit,
}

/// Runs one command against the model; returns the answer line and what to do next.
pub fn execute(model: &Mutex<Model>, line: &str) -> (String, Next) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut model = model.lock().expect("model lock poisoned");
    let switch = |word: Option<&&str>| match word {
        Some(&"on") => Ok(true),
        Some(&"off") => Ok(false),
        _ => Err("expected on or off".to_string()),
    };
    let answer = match words.as_slice() {
        ["power-loss"] => Ok(power_loss(&mut model, None)),
        ["power-loss", "tear", seed] => match seed.parse::<u64>() {
            Ok(seed) => Ok(power_loss(&mut model, Some(seed))),
            Err(err) => Err(format!("bad seed: {err}")),
        },
        ["fail-fsync", rest @ ..] => switch(rest.first()).map(|on| {
            model.faults.fsync_eio = on;
            "ok".to_string()
        }),
        ["fail-write", rest @ ..] => switch(rest.first()).map(|on| {
            model.faults.write_enospc = on;
            "ok".to_string()
        }),
        ["stats"] => {
            let stats = model.stats;
            Ok(format!(
                "ok writes={} fsyncs={} dir_fsyncs={} fsync_errors={} power_losses={} dropped_ops={} torn_kept_ops={} fsyncs_after_error={} open_files={}",
                stats.writes,
                stats.fsyncs,
                stats.dir_fsyncs,
                stats.fsync_errors,
                stats.power_losses,
                stats.ops_dropped,
                stats.ops_kept_by_tear,
                stats.fsyncs_after_error,
                stats.open_files
            ))
        }
        ["quit"] => return ("ok".to_string(), Next::Quit),
        _ => Err(format!("unknown command {line:?}")),
    };
    match answer {
        Ok(answer) => (answer, Next::Continue),
        Err(reason) => (format!("error {reason}"), Next::Continue),
    }
}

fn power_loss(model: &mut Model, seed: Option<u64>) -> String {
    let mut rng = seed.map(SplitMix64::new);
    let report = model.power_loss(rng.as_mut());
    format!(
        "ok dropped_ops={} kept_ops={} dropped_inodes={}",
        report.ops_dropped, report.ops_kept, report.inodes_dropped
    )
}

/// Serves connections one at a time until a `quit`.
pub fn serve(listener: &UnixListener, model: &Arc<Mutex<Model>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            continue;
        };
        if serve_connection(stream, model) == Next::Quit {
            return;
        }
    }
}

fn serve_connection(stream: UnixStream, model: &Mutex<Model>) -> Next {
    let Ok(mut writer) = stream.try_clone() else {
        return Next::Continue;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match Read::by_ref(&mut reader)
            .take(COMMAND_BYTES_MAX as u64)
            .read_line(&mut line)
        {
            Ok(0) | Err(_) => return Next::Continue,
            Ok(_) => {}
        }
        if !line.ends_with('\n') {
            let _ = writeln!(
                writer,
                "error command longer than {COMMAND_BYTES_MAX} bytes"
            );
            return Next::Continue;
        }
        let (answer, next) = execute(model, line.trim());
        if writeln!(writer, "{answer}").is_err() || next == Next::Quit {
            return next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each command is answered; a bad one says why.
    #[test]
    fn commands_answer() {
        let model = Mutex::new(Model::new());
        assert_eq!(execute(&model, "fail-fsync on").0, "ok");
        assert!(model.lock().unwrap().faults.fsync_eio);
        assert_eq!(
            execute(&model, "fail-write maybe").0,
            "error expected on or off"
        );
        assert!(execute(&model, "power-loss tear 7")
            .0
            .starts_with("ok dropped_ops=0"));
        assert!(execute(&model, "stats").0.contains("power_losses=1"));
        assert!(execute(&model, "reboot")
            .0
            .starts_with("error unknown command"));
        assert_eq!(execute(&model, "quit").1, Next::Quit);
    }
}
