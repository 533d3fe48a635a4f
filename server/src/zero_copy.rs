//! Zero-copy sends of file ranges to TCP sockets: splice(2) file → pipe → socket, submitted on the
//! current thread's io_uring, so Fetch record bytes go from the page cache to the socket without
//! entering user space.
//!
//! splice needs a pipe on one side, hence a [`SplicePipe`] per connection. io_uring runs splices
//! in its worker threads, so a blocked splice (full socket buffer, cold page cache) never stalls
//! the shard's thread.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use compio::driver::op::{Interest, PollOnce, Splice, SpliceFlags};
use compio::driver::{SharedFd, ToSharedFd};
use compio::BufResult;

/// Pipe size asked for: fewer splice round trips per large fetch. 1 MiB is also the default
/// unprivileged maximum (`/proc/sys/fs/pipe-max-size`).
const PIPE_CAPACITY_WANTED: libc::c_int = 1 << 20;

/// Linux's default pipe size, assumed if the kernel will not even report the size.
const PIPE_CAPACITY_DEFAULT: usize = 64 << 10;

/// Bytes moved from a pipe into a socket by splice, process-wide.
static SPLICED_BYTES_TOTAL: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
thread_local! {
    // Tests run in parallel threads of one process; per-thread counts are exact for each.
    static SPLICED_BYTES_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
    static SOCKET_FULL_WAITS_THIS_THREAD: Cell<u64> = const { Cell::new(0) };
}

/// Bytes sent to sockets by splice since the process started (they never entered user space).
pub fn spliced_bytes_total() -> u64 {
    SPLICED_BYTES_TOTAL.load(Ordering::Relaxed)
}

fn count_spliced(bytes: usize) {
    SPLICED_BYTES_TOTAL.fetch_add(bytes as u64, Ordering::Relaxed);
    #[cfg(test)]
    SPLICED_BYTES_THIS_THREAD.with(|count| count.set(count.get() + bytes as u64));
}

/// The pipe a connection splices through. Not shareable between concurrent sends: each send
/// assumes the pipe starts empty.
pub struct SplicePipe {
    read: SharedFd<OwnedFd>,
    write: SharedFd<OwnedFd>,
    /// The pipe's capacity in bytes: the most one file → pipe splice moves.
    capacity: usize,
    /// Set while the pipe may hold bytes of an unfinished send (a failed or dropped
    /// [`send_file_range`]); such bytes would be spliced into the next response.
    dirty: Cell<bool>,
}

impl SplicePipe {
    /// Creates the pipe, raising its capacity to 1 MiB if the kernel allows (else keeping the
    /// default).
    pub fn new() -> io::Result<Self> {
        let mut fds: [libc::c_int; 2] = [-1; 2];
        // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let fd = write.as_raw_fd();
        // SAFETY: fcntl on an open descriptor with commands that take an int or no argument;
        // failure leaves the pipe as it was, which is fine (the size is read back below).
        let capacity = unsafe {
            libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_CAPACITY_WANTED);
            libc::fcntl(fd, libc::F_GETPIPE_SZ)
        };
        let capacity = usize::try_from(capacity)
            .ok()
            .filter(|&capacity| capacity > 0)
            .unwrap_or(PIPE_CAPACITY_DEFAULT);
        Ok(Self {
            read: SharedFd::new(read),
            write: SharedFd::new(write),
            capacity,
            dirty: Cell::new(false),
        })
    }
}

/// Sends `len` bytes of `file` from `position` to `socket`: splice file → pipe, then pipe →
/// socket, looping over partial splices (and waiting for room if the socket is non-blocking).
///
/// Any error leaves the response partly written, so the caller must close the connection rather
/// than send anything else on it. In particular a file shorter than `position + len` fails with
/// [`io::ErrorKind::UnexpectedEof`] after the bytes it does have were sent (the frame promised
/// `len`). Bytes left in the pipe by a failed or dropped send make every later send on this
/// pipe fail too, instead of leaking into another response.
///
/// The range must not be rewritten in place while the connection lives: TCP keeps referencing
/// the page-cache pages until the peer acknowledges them (append-only segments are fine).
pub async fn send_file_range(
    pipe: &SplicePipe,
    file: &compio::fs::File,
    position: u64,
    len: u64,
    socket: &compio::net::TcpStream,
) -> io::Result<()> {
    if pipe.dirty.get() {
        return Err(io::Error::other(
            "splice pipe holds bytes of an earlier failed send; the connection must be closed",
        ));
    }
    let file_fd = file.to_shared_fd();
    let socket_fd = socket.to_shared_fd();
    let mut sent = 0u64;
    while sent < len {
        let offset = position
            .checked_add(sent)
            .and_then(|offset| i64::try_from(offset).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "file offset overflow"))?;
        let want =
            usize::try_from(len - sent).map_or(pipe.capacity, |left| left.min(pipe.capacity));

        // Dirty before submitting: if this future is dropped, the splice still completes in the
        // kernel and may fill the pipe.
        pipe.dirty.set(true);
        let filled = loop {
            let op = Splice::new(
                file_fd.clone(),
                offset,
                pipe.write.clone(),
                -1,
                want,
                SpliceFlags::empty(),
            );
            match compio::runtime::submit(op).await.0 {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                result => break result,
            }
        };
        let filled = match filled {
            Ok(0) => {
                pipe.dirty.set(false);
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ends at {offset}, before the {len} bytes asked from {position}"),
                ));
            }
            Ok(filled) => filled,
            Err(error) => {
                // A failed splice moved nothing, so the pipe is still empty.
                pipe.dirty.set(false);
                return Err(error);
            }
        };

        let more_follows = sent + (filled as u64) < len;
        drain_to_socket(pipe, &socket_fd, filled, more_follows).await?;
        pipe.dirty.set(false);
        sent += filled as u64;
    }
    Ok(())
}

/// Moves exactly `len` bytes from the pipe to the socket.
async fn drain_to_socket(
    pipe: &SplicePipe,
    socket_fd: &SharedFd<socket2::Socket>,
    len: usize,
    more_follows: bool,
) -> io::Result<()> {
    // MSG_MORE between pipe loads of one range: no half-empty segment pushed at each boundary.
    let flags = if more_follows {
        SpliceFlags::MORE
    } else {
        SpliceFlags::empty()
    };
    let mut left = len;
    while left > 0 {
        let op = Splice::new(pipe.read.clone(), -1, socket_fd.clone(), -1, left, flags);
        let BufResult(result, _) = compio::runtime::submit(op).await;
        match result {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket accepted no bytes from the splice pipe",
                ));
            }
            Ok(moved) => {
                count_spliced(moved);
                left -= moved;
            }
            // A non-blocking socket (compio's io_uring sockets are blocking, but the caller may
            // have changed that) reports a full send buffer instead of waiting for room.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                #[cfg(test)]
                SOCKET_FULL_WAITS_THIS_THREAD.with(|waits| waits.set(waits.get() + 1));
                let poll = PollOnce::new(socket_fd.clone(), Interest::Writable);
                compio::runtime::submit(poll).await.0?;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write;
    use std::time::Duration;

    use compio::io::AsyncReadExt;
    use compio::net::{TcpListener, TcpStream};

    fn this_thread_spliced() -> u64 {
        SPLICED_BYTES_THIS_THREAD.with(Cell::get)
    }

    /// Non-repeating contents, so a range sent from the wrong offset cannot compare equal.
    fn contents(len: usize) -> Vec<u8> {
        crate::test_bytes::non_repeating(len, 0x9E37_79B9_7F4A_7C15)
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        file: compio::fs::File,
        data: Vec<u8>,
        server: TcpStream,
        client: TcpStream,
    }

    async fn fixture(file_len: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment.log");
        let data = contents(file_len);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let file = compio::fs::File::open(&path).await.unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = TcpStream::connect(address).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        Fixture {
            _dir: dir,
            file,
            data,
            server,
            client,
        }
    }

    /// Reads exactly `len` bytes on a separate task, after `delay` (to fill the send buffer).
    fn read_on_task(
        mut client: TcpStream,
        len: usize,
        delay: Duration,
    ) -> compio::runtime::JoinHandle<(TcpStream, Vec<u8>)> {
        compio::runtime::spawn(async move {
            compio::time::sleep(delay).await;
            let BufResult(result, received) = client.read_exact(vec![0u8; len]).await;
            result.unwrap();
            (client, received)
        })
    }

    #[compio::test]
    async fn ranges_arrive_byte_for_byte() {
        // Not a multiple of the pipe size (nor of a page).
        let file_len = 3 * (1 << 20) + 12_345;
        let fx = fixture(file_len).await;
        let pipe = SplicePipe::new().unwrap();
        let capacity = pipe.capacity;
        assert!(capacity >= 4096 && capacity <= file_len / 2);

        let ranges: Vec<(u64, u64)> = vec![
            (0, 100),
            (1_000, 0),
            (12_345, 700_001),
            (4_097, 2 * capacity as u64 + 333),
            (0, file_len as u64),
            (file_len as u64 - 10, 10),
            (file_len as u64, 0),
        ];
        let total: u64 = ranges.iter().map(|&(_, len)| len).sum();
        let expected: Vec<u8> = ranges
            .iter()
            .flat_map(|&(position, len)| &fx.data[position as usize..(position + len) as usize])
            .copied()
            .collect();

        let before_total = spliced_bytes_total();
        let before_thread = this_thread_spliced();
        let reader = read_on_task(fx.client, total as usize, Duration::ZERO);
        for &(position, len) in &ranges {
            send_file_range(&pipe, &fx.file, position, len, &fx.server)
                .await
                .unwrap();
        }
        let (_client, received) = reader.await.unwrap();

        assert!(
            received == expected,
            "received bytes differ from the file ranges"
        );
        assert_eq!(this_thread_spliced() - before_thread, total);
        assert!(spliced_bytes_total() - before_total >= total);
    }

    #[compio::test]
    async fn non_blocking_socket_waits_for_room() {
        let file_len = 8 * (1 << 20) + 7;
        let fx = fixture(file_len).await;
        fx.server.to_shared_fd().set_nonblocking(true).unwrap();
        // Small socket buffers on both sides, so that the 8 MiB cannot all fit in them (loopback
        // autotuning can grow the two to more than that) and the splice must meet EAGAIN.
        socket2::SockRef::from(&fx.server)
            .set_send_buffer_size(64 * 1024)
            .unwrap();
        socket2::SockRef::from(&fx.client)
            .set_recv_buffer_size(64 * 1024)
            .unwrap();
        let pipe = SplicePipe::new().unwrap();

        let before = this_thread_spliced();
        let waits_before = SOCKET_FULL_WAITS_THIS_THREAD.with(Cell::get);
        // The late reader makes the send buffer fill up, so the splice meets EAGAIN.
        let reader = read_on_task(fx.client, file_len - 1, Duration::from_millis(50));
        send_file_range(&pipe, &fx.file, 1, file_len as u64 - 1, &fx.server)
            .await
            .unwrap();
        let (_client, received) = reader.await.unwrap();

        assert!(
            received[..] == fx.data[1..],
            "received bytes differ from the file"
        );
        assert_eq!(this_thread_spliced() - before, file_len as u64 - 1);
        assert!(SOCKET_FULL_WAITS_THIS_THREAD.with(Cell::get) > waits_before);
    }

    #[compio::test]
    async fn reading_past_end_of_file_errors() {
        let file_len = 100_000;
        let fx = fixture(file_len).await;
        let pipe = SplicePipe::new().unwrap();

        let error = send_file_range(&pipe, &fx.file, file_len as u64 + 10, 5, &fx.server)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);

        // The bytes before the end go out, then the shortfall is an error.
        let before = this_thread_spliced();
        let error = send_file_range(&pipe, &fx.file, file_len as u64 - 100, 200, &fx.server)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(this_thread_spliced() - before, 100);

        // Those errors left the pipe empty: it still sends exactly what is asked.
        let reader = read_on_task(fx.client, 150, Duration::ZERO);
        send_file_range(&pipe, &fx.file, 0, 50, &fx.server)
            .await
            .unwrap();
        let (_client, received) = reader.await.unwrap();
        assert!(received[..100] == fx.data[file_len - 100..]);
        assert!(received[100..] == fx.data[..50]);
    }

    #[compio::test]
    async fn dirty_pipe_refuses_to_send() {
        let fx = fixture(1_000).await;
        let pipe = SplicePipe::new().unwrap();
        pipe.dirty.set(true);
        let error = send_file_range(&pipe, &fx.file, 0, 10, &fx.server)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Other);
    }
}
