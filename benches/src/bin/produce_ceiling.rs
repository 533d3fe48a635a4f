//! The produce latency of the simplest possible broker on this machine (issue 13's fixed-rate
//! goal): what p99 is left when nothing but the unavoidable work is done?
//!
//! A producer thread makes `--rate-msg-s` messages of `--message-bytes` a second on a fixed
//! schedule, and sends them in requests the way a Kafka client does: a request leaves when the
//! linger of its first message ends (`--linger-ms`), holding every message due by then, split
//! evenly over `--connections` loopback TCP connections. A server thread per connection reads each
//! request whole, writes it to a file through the page cache (`--write buffered`, files of 1 GiB
//! in `--dir`, like a log's segments; with the broker's default writeback every 8 MiB and drop
//! behind 256 MiB, both by `posix_fadvise(DONTNEED)` on the server thread, or neither with
//! `--drop-behind false`) or drops it (`--write none`), and answers with 8 bytes. A
//! reader thread per connection takes each answer's time and records every message of the request
//! from its own creation, as the loadgen does (linger and send wait included).
//!
//! Left out on purpose, so this stays a floor: Kafka's framing, record encoding and CRCs, offsets,
//! indexes, and any hop between threads on the server side. Client and server share the machine's
//! cores, as the loadgen and the broker do.
//!
//! Usage: `cargo run --release -p ringtail-benches --bin produce_ceiling -- [--rate-msg-s 850000]
//!         [--message-bytes 1024] [--linger-ms 1] [--connections 2] [--duration-s 10]
//!         [--warmup-s 2] [--write buffered|none] [--drop-behind true|false] [--dir DIR]`
//! Prints one JSON line: the rate sent, latency percentiles in ms, and the process's CPU seconds.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringtail_loadgen::cpu;

/// Each file the server writes holds this much, then the next one starts (a log segment).
const FILE_BYTES: u64 = 1 << 30;
/// A request's header: its payload's length and the global index of its first message.
const HEADER_BYTES: usize = 16;
/// Dirty bytes after which a file's writeback is started, and written bytes kept in the page
/// cache behind a file's end: the broker's defaults (`writeback.bytes`, `drop.behind.bytes`), so
/// the floor writes as the broker does. Older pages are dropped once written back, so later
/// writes reuse memory instead of running into the kernel's dirty-page throttling.
const WRITEBACK_BYTES: u64 = ringtail_engine::config::WRITEBACK_BYTES_DEFAULT;
const DROP_BEHIND_BYTES: u64 = ringtail_engine::config::DROP_BEHIND_BYTES_DEFAULT;
/// Latencies are recorded in microseconds, up to this.
const HIGHEST_LATENCY_US: u64 = 60_000_000;

struct Options {
    rate_msg_s: f64,
    message_bytes: usize,
    linger: Duration,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    write_to: Option<PathBuf>,
    drop_behind: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        rate_msg_s: 850_000.0,
        message_bytes: 1024,
        linger: Duration::from_millis(1),
        connections: 2,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        write_to: None,
        drop_behind: true,
    };
    let mut write = String::from("buffered");
    let mut dir = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--rate-msg-s" => options.rate_msg_s = number()?,
            "--message-bytes" => options.message_bytes = number()? as usize,
            "--linger-ms" => options.linger = Duration::from_secs_f64(number()? / 1e3),
            "--connections" => options.connections = (number()? as usize).max(1),
            "--duration-s" => options.duration = Duration::from_secs_f64(number()?),
            "--warmup-s" => options.warmup = Duration::from_secs_f64(number()?),
            "--write" => write = value,
            "--dir" => dir = PathBuf::from(value),
            "--drop-behind" => {
                options.drop_behind = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("--drop-behind {value}: true or false")),
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    options.write_to = match write.as_str() {
        "buffered" => Some(dir),
        "none" => None,
        other => return Err(format!("--write {other}: buffered or none")),
    };
    Ok(options)
}

/// One connection's server side: read whole requests, write them to files, answer each.
fn serve(
    mut socket: TcpStream,
    dir: Option<PathBuf>,
    drop_behind: bool,
    connection: usize,
) -> io::Result<()> {
    let mut header = [0u8; HEADER_BYTES];
    let mut payload = Vec::new();
    let mut file: Option<File> = None;
    let mut files_made = 0;
    let mut position = 0u64;
    let scratch = dir.map(tempfile::tempdir_in).transpose()?;
    loop {
        match socket.read_exact(&mut header) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        }
        let payload_bytes = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        payload.resize(payload_bytes as usize, 0);
        socket.read_exact(&mut payload)?;
        if let Some(scratch) = &scratch {
            if file.is_none() || position + payload_bytes > FILE_BYTES {
                let name = format!("{connection}-{files_made:06}.log");
                file = Some(File::create(scratch.path().join(name))?);
                files_made += 1;
                position = 0;
            }
            let file = file.as_ref().expect("opened above");
            file.write_all_at(&payload, position)?;
            let written_to = position + payload_bytes;
            if drop_behind && written_to / WRITEBACK_BYTES > position / WRITEBACK_BYTES {
                // DONTNEED starts the writeback of dirty pages and drops the clean ones: on the
                // last 8 MiB it starts their writeback, on the range 256 MiB behind (written back
                // by now) it frees the memory.
                let dirty_from = (written_to / WRITEBACK_BYTES - 1) * WRITEBACK_BYTES;
                advise_dont_need(file, dirty_from, WRITEBACK_BYTES)?;
                if let Some(old_from) = dirty_from.checked_sub(DROP_BEHIND_BYTES) {
                    advise_dont_need(file, old_from, WRITEBACK_BYTES)?;
                }
            }
            position = written_to;
        }
        socket.write_all(&header[8..])?;
    }
}

fn advise_dont_need(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let len = std::num::NonZeroU64::new(len).expect("a range of bytes");
    rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed)?;
    Ok(())
}

/// One connection's client side: time each answer and record every message of its request.
struct Timeline {
    start: Instant,
    rate_msg_s: f64,
    measured_from: Duration,
    measured_to: Duration,
}

impl Timeline {
    fn created(&self, message: u64) -> Duration {
        Duration::from_secs_f64(message as f64 / self.rate_msg_s)
    }
}

fn read_answers(
    mut socket: TcpStream,
    sent: mpsc::Receiver<(u64, u64)>,
    timeline: &Timeline,
) -> io::Result<Histogram<u64>> {
    let mut histogram =
        Histogram::new_with_bounds(1, HIGHEST_LATENCY_US, 3).map_err(io::Error::other)?;
    let mut answer = [0u8; 8];
    while let Ok((first, count)) = sent.recv() {
        socket.read_exact(&mut answer)?;
        let answered = timeline.start.elapsed();
        if u64::from_le_bytes(answer) != first {
            return Err(io::Error::other("answers out of order"));
        }
        for message in first..first + count {
            let created = timeline.created(message);
            if created >= timeline.measured_from && created < timeline.measured_to {
                let latency_us = answered.saturating_sub(created).as_micros() as u64;
                histogram.saturating_record(latency_us.max(1));
            }
        }
    }
    Ok(histogram)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let cpu_before = cpu::self_cpu()?.total_s();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let timeline = Timeline {
        start: Instant::now(),
        rate_msg_s: options.rate_msg_s,
        measured_from: options.warmup,
        measured_to: options.warmup + options.duration,
    };
    let value: Vec<u8> = (0..options.message_bytes)
        .map(|at| (at % 251) as u8)
        .collect();
    let histograms = thread::scope(|scope| -> Result<Vec<Histogram<u64>>, io::Error> {
        let mut senders = Vec::new();
        let mut readers = Vec::new();
        for connection in 0..options.connections {
            let client = TcpStream::connect(address)?;
            let (server, _) = listener.accept()?;
            client.set_nodelay(true)?;
            server.set_nodelay(true)?;
            let dir = options.write_to.clone();
            let drop_behind = options.drop_behind;
            scope.spawn(move || serve(server, dir, drop_behind, connection).expect("server side"));
            let (sent_tx, sent_rx) = mpsc::channel();
            let answers = client.try_clone()?;
            let timeline = &timeline;
            readers.push(scope.spawn(move || read_answers(answers, sent_rx, timeline)));
            senders.push((client, sent_tx, Vec::new()));
        }
        let last_message = (timeline.measured_to.as_secs_f64() * options.rate_msg_s) as u64;
        let mut next = 0u64;
        while next < last_message {
            let linger_end = timeline.created(next) + options.linger;
            if let Some(wait) = linger_end.checked_sub(timeline.start.elapsed()) {
                thread::sleep(wait);
            }
            let due = (timeline.start.elapsed().as_secs_f64() * options.rate_msg_s) as u64 + 1;
            let due = due.min(last_message).max(next + 1);
            let count = due - next;
            let connections = senders.len() as u64;
            for (at, (socket, sent, request)) in senders.iter_mut().enumerate() {
                let at = at as u64;
                let first = next + count * at / connections;
                let share = next + count * (at + 1) / connections - first;
                if share == 0 {
                    continue;
                }
                let payload_bytes = share as usize * options.message_bytes;
                request.clear();
                request.extend_from_slice(&(payload_bytes as u64).to_le_bytes());
                request.extend_from_slice(&first.to_le_bytes());
                for _ in 0..share {
                    request.extend_from_slice(&value);
                }
                sent.send((first, share)).map_err(io::Error::other)?;
                socket.write_all(request)?;
            }
            next = due;
        }
        for (socket, _, _) in &senders {
            socket.shutdown(std::net::Shutdown::Write)?;
        }
        drop(senders);
        readers
            .into_iter()
            .map(|reader| reader.join().expect("reader thread"))
            .collect()
    })?;
    let mut all = Histogram::<u64>::new_with_bounds(1, HIGHEST_LATENCY_US, 3)?;
    for histogram in &histograms {
        all.add(histogram)?;
    }
    let cpu_s = cpu::self_cpu()?.total_s() - cpu_before;
    let ms = |quantile: f64| all.value_at_quantile(quantile) as f64 / 1e3;
    println!(
        "{{\"rate_msg_s\": {}, \"mb_s\": {:.1}, \"connections\": {}, \"write\": \"{}\", \"linger_ms\": {}, \"drop_behind\": {}, \
         \"messages\": {}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"p999_ms\": {:.3}, \"max_ms\": {:.3}, \"cpu_s\": {:.2}}}",
        options.rate_msg_s,
        options.rate_msg_s * options.message_bytes as f64 / 1e6,
        options.connections,
        if options.write_to.is_some() { "buffered" } else { "none" },
        options.linger.as_secs_f64() * 1e3,
        options.drop_behind && options.write_to.is_some(),
        all.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        all.max() as f64 / 1e3,
        cpu_s,
    );
    Ok(())
}
