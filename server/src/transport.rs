//! A connection's byte stream, plain or TLS, split into the reader's and the writer's halves.
//!
//! Plain halves are the socket itself: reads and writes go straight to io_uring and a fetch's
//! record bytes are spliced file → pipe → socket. TLS halves share one rustls connection in a
//! `RefCell`, borrowed only between awaits (never across one); all TLS bytes leave through one
//! async lock, so records of the reader (handshake, alerts) and of the writer never interleave.
//!
//! # Invariants worth naming
//! - No `RefCell` borrow of the TLS state is held across an `.await`.
//! - Ciphertext read but not yet taken by rustls stays in `pending`; nothing read is dropped.
//! - rustls buffers at most [`TLS_CHUNK_BYTES`] of plaintext per write before it is flushed.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use compio::buf::IntoInner;
use compio::io::{AsyncRead, AsyncReadAtExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;
use compio::BufResult;
use rustls::{ServerConfig, ServerConnection};

use crate::residency::{FileRange, RangeSender};
use ringtail_engine::io::IOVECS_PER_WRITE_MAX;

/// Plaintext handed to rustls per write, and file bytes read per step of a TLS fetch.
const TLS_CHUNK_BYTES: usize = 64 * 1024;
/// Ciphertext read from the socket per read.
const TLS_READ_BYTES: usize = 64 * 1024;

pub struct TlsShared {
    tls: RefCell<ServerConnection>,
    /// The socket TLS bytes are written to (a clone of the reader's).
    stream: TcpStream,
    writing: futures_util::lock::Mutex<()>,
}

impl TlsShared {
    /// Sends everything rustls has queued (handshake messages, alerts, records).
    async fn flush(&self) -> io::Result<()> {
        let _writing = self.writing.lock().await;
        self.flush_locked().await
    }

    async fn flush_locked(&self) -> io::Result<()> {
        loop {
            let out = {
                let mut tls = self.tls.borrow_mut();
                let mut out = Vec::new();
                while tls.wants_write() {
                    tls.write_tls(&mut out)?;
                }
                out
            };
            if out.is_empty() {
                return Ok(());
            }
            let mut stream = self.stream.clone();
            let BufResult(result, _) = stream.write_all(out).await;
            result?;
        }
    }
}

/// The reading half.
pub enum ConnReader {
    Plain(TcpStream),
    Tls {
        stream: TcpStream,
        shared: Rc<TlsShared>,
        /// Ciphertext read from the socket that rustls has not taken yet.
        pending: Vec<u8>,
    },
}

/// The writing half.
pub enum ConnWriter {
    Plain(TcpStream),
    Tls(Rc<TlsShared>),
}

/// Splits a plain connection.
pub fn plain(stream: TcpStream) -> (ConnReader, ConnWriter) {
    (ConnReader::Plain(stream.clone()), ConnWriter::Plain(stream))
}

/// Runs the server side of a TLS handshake; returns the halves and the client certificate's
/// principal (mutual TLS), if any. The caller bounds its time.
pub async fn accept_tls(
    stream: TcpStream,
    config: Arc<ServerConfig>,
) -> io::Result<(ConnReader, ConnWriter, Option<String>)> {
    let tls = ServerConnection::new(config).map_err(io::Error::other)?;
    let shared = Rc::new(TlsShared {
        tls: RefCell::new(tls),
        stream: stream.clone(),
        writing: futures_util::lock::Mutex::new(()),
    });
    let mut reader = ConnReader::Tls {
        stream,
        shared: Rc::clone(&shared),
        pending: Vec::new(),
    };
    loop {
        shared.flush().await?;
        if !shared.tls.borrow().is_handshaking() {
            break;
        }
        if !reader.read_ciphertext().await? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let principal = shared
        .tls
        .borrow()
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| crate::tls::certificate_principal(cert));
    Ok((reader, ConnWriter::Tls(shared), principal))
}

impl ConnReader {
    /// Reads at most `max` bytes; an empty result means the client closed the connection.
    pub async fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        match self {
            Self::Plain(stream) => {
                let BufResult(result, buffer) = stream.read(Vec::with_capacity(max)).await;
                result?;
                Ok(buffer)
            }
            Self::Tls { .. } => {
                let mut buffer = vec![0u8; max];
                let got = self.read_plaintext(&mut buffer).await?;
                buffer.truncate(got);
                Ok(buffer)
            }
        }
    }

    /// Reads exactly `len` bytes.
    pub async fn read_exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        self.read_exact_into(Vec::with_capacity(len), len).await
    }

    /// Reads exactly `len` bytes into `buffer` (empty, with room for them).
    async fn read_exact_into(&mut self, buffer: Vec<u8>, len: usize) -> io::Result<Vec<u8>> {
        debug_assert!(buffer.is_empty());
        self.read_exact_append(buffer, len).await
    }

    /// Reads exactly `len` more bytes onto the end of `buffer`, which has room for them: a
    /// request frame is read into a buffer from its shard's pool (frame_pool.rs) a piece at a
    /// time, each piece charged to the request-bytes budget before it is read.
    pub async fn read_exact_append(&mut self, buffer: Vec<u8>, len: usize) -> io::Result<Vec<u8>> {
        let start = buffer.len();
        let end = start + len;
        assert!(buffer.capacity() >= end, "room for {len} more bytes");
        let buffer = match self {
            Self::Plain(stream) => {
                let BufResult(result, buffer) = stream
                    .read_exact(compio::buf::IoBuf::slice(buffer, start..end))
                    .await;
                result?;
                buffer.into_inner()
            }
            Self::Tls { .. } => {
                let mut buffer = buffer;
                buffer.resize(end, 0);
                let mut filled = start;
                while filled < end {
                    let got = self.read_plaintext(&mut buffer[filled..end]).await?;
                    if got == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    filled += got;
                }
                buffer
            }
        };
        assert_eq!(buffer.len(), end, "a read of exactly {len} more bytes");
        Ok(buffer)
    }

    /// TLS: plaintext rustls has decrypted, reading and decrypting more as needed; 0 at the end.
    async fn read_plaintext(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Self::Tls { shared, .. } = self else {
            unreachable!("only TLS readers decrypt")
        };
        let shared = Rc::clone(shared);
        loop {
            {
                let mut tls = shared.tls.borrow_mut();
                match tls.reader().read(out) {
                    Ok(got) => return Ok(got),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
            }
            if !self.read_ciphertext().await? {
                return Ok(0);
            }
        }
    }

    /// TLS: feeds pending ciphertext to rustls, reading more from the socket when none is left;
    /// sends what rustls answers. False when the socket reached its end.
    async fn read_ciphertext(&mut self) -> io::Result<bool> {
        let Self::Tls {
            stream,
            shared,
            pending,
        } = self
        else {
            unreachable!("only TLS readers decrypt")
        };
        if pending.is_empty() {
            let BufResult(result, buffer) = stream.read(Vec::with_capacity(TLS_READ_BYTES)).await;
            if result? == 0 {
                return Ok(false);
            }
            *pending = buffer;
        }
        let processed = {
            let mut tls = shared.tls.borrow_mut();
            let taken = tls.read_tls(&mut pending.as_slice())?;
            pending.drain(..taken);
            tls.process_new_packets()
        };
        // An error leaves an alert queued for the client: send it, then fail.
        if shared.tls.borrow().wants_write() {
            shared.flush().await?;
        }
        processed.map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        Ok(true)
    }
}

impl ConnWriter {
    pub async fn write_all<B>(&mut self, bytes: B) -> io::Result<()>
    where
        // The trait is named by path: in scope, its `is_empty` would shadow Vec's.
        B: compio::buf::IoBuf + std::ops::Deref<Target = [u8]>,
    {
        match self {
            Self::Plain(stream) => {
                let BufResult(result, _) = stream.write_all(bytes).await;
                result
            }
            Self::Tls(shared) => {
                let _writing = shared.writing.lock().await;
                for chunk in bytes.chunks(TLS_CHUNK_BYTES) {
                    shared.tls.borrow_mut().writer().write_all(chunk)?;
                    shared.flush_locked().await?;
                }
                Ok(())
            }
        }
    }

    /// Sends `pieces` back to back: one `writev` per [`IOVECS_PER_WRITE_MAX`] pieces on a plain
    /// socket, piece by piece on TLS.
    pub async fn write_pieces(&mut self, pieces: Vec<bytes::Bytes>) -> io::Result<()> {
        match self {
            Self::Plain(stream) => {
                let mut rest = pieces;
                while !rest.is_empty() {
                    let tail = rest.split_off(rest.len().min(IOVECS_PER_WRITE_MAX));
                    let BufResult(result, _) = stream.write_vectored_all(rest).await;
                    result?;
                    rest = tail;
                }
                Ok(())
            }
            Self::Tls(_) => {
                for piece in pieces {
                    self.write_all(piece).await?;
                }
                Ok(())
            }
        }
    }

    /// Sends a file range: through `sender` on a plain socket (spliced, or read off the shard
    /// when cold; `next` lets it start the following range's cold reads early), read and
    /// encrypted in user space on TLS.
    pub async fn send_file(
        &mut self,
        sender: &mut RangeSender,
        range: FileRange<'_>,
        next: Option<FileRange<'_>>,
    ) -> io::Result<()> {
        match self {
            Self::Plain(stream) => sender.send(range, next, stream).await,
            Self::Tls(_) => {
                let FileRange {
                    file,
                    position,
                    len,
                } = range;
                let mut sent = 0u64;
                while sent < len {
                    let step = (len - sent).min(TLS_CHUNK_BYTES as u64) as usize;
                    let BufResult(result, chunk) = file
                        .read_exact_at(Vec::with_capacity(step), position + sent)
                        .await;
                    result?;
                    self.write_all(chunk).await?;
                    sent += step as u64;
                }
                Ok(())
            }
        }
    }

    pub async fn shutdown(&mut self) {
        match self {
            Self::Plain(stream) => {
                let _ = stream.shutdown().await;
            }
            Self::Tls(shared) => {
                shared.tls.borrow_mut().send_close_notify();
                let _ = shared.flush().await;
                let mut stream = shared.stream.clone();
                let _ = stream.shutdown().await;
            }
        }
    }
}
