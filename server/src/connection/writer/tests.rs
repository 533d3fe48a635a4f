//! The writer under a panic while sending.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use compio::io::AsyncRead;
use compio::net::{TcpListener, TcpStream};
use compio::BufResult;
use kafka_protocol::messages::ApiKey;

use super::super::{Answered, PendingResponse};
use super::write_responses;
use crate::api::Response;
use crate::residency::{
    ColdReadIo, ColdReadPriority, ResidencyCheck, SendPolicy, COLD_READS_IN_FLIGHT_DEFAULT,
};

thread_local! {
    /// Set by a test: the next `send` on this thread panics.
    pub(super) static PANIC_IN_NEXT_SEND: Cell<bool> = const { Cell::new(false) };
}

fn answered(api: ApiKey) -> Answered {
    Answered {
        response: Response::Frame(BytesMut::from(&b"an answer"[..])),
        api,
        at: Instant::now(),
        throttle_ms: 0,
    }
}

#[compio::test]
async fn a_panic_while_sending_closes_the_connection_and_the_queued_handlers_run_to_their_end() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    let (_reader, writer) = crate::transport::plain(server);
    let (queue, responses) = flume::bounded::<PendingResponse>(4);
    let closing = Rc::new(Cell::new(false));
    let policy = SendPolicy {
        check: ResidencyCheck::On,
        cold_reads_in_flight: COLD_READS_IN_FLIGHT_DEFAULT,
        cold_read_io: ColdReadIo::Direct,
        cold_read_priority: ColdReadPriority::Normal,
        cold_send_thread: crate::residency::ColdSendThread::Shard,
    };
    let writer = compio::runtime::spawn(write_responses(
        writer,
        responses,
        peer,
        policy,
        (Rc::default(), Rc::clone(&closing)),
    ));

    // The first response's send panics. The second request's handler is still running then: it
    // goes on (a Produce halfway through its append) only if the writer still holds it.
    PANIC_IN_NEXT_SEND.with(|panic| panic.set(true));
    queue
        .send_async(compio::runtime::spawn(async {
            Ok(answered(ApiKey::Metadata))
        }))
        .await
        .unwrap();
    let (release, released) = futures_channel::oneshot::channel::<()>();
    let finished = Rc::new(Cell::new(false));
    let finished_by_handler = Rc::clone(&finished);
    queue
        .send_async(compio::runtime::spawn(async move {
            released.await.unwrap();
            finished_by_handler.set(true);
            Ok(answered(ApiKey::Produce))
        }))
        .await
        .unwrap();
    // Until the writer has met the panic (it sets `closing`) or has ended (a writer that let the
    // panic end it); bounded, so the test fails rather than hangs.
    for _ in 0..5_000 {
        if closing.get() || writer.is_finished() {
            break;
        }
        compio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        !PANIC_IN_NEXT_SEND.with(Cell::get),
        "the injected panic happened"
    );
    assert!(closing.get(), "the reader is told to stop reading");
    // The handler's client may still wait; its work runs to its end regardless.
    let _ = release.send(());
    drop(queue);
    writer
        .await
        .expect("the writer ends normally, the panic contained");
    assert!(finished.get(), "the queued handler ran to its end");

    // Nothing was answered: the connection was shut at the panic, and the client sees its end.
    let BufResult(read, _) = client.read(Vec::with_capacity(64)).await;
    assert_eq!(read.unwrap(), 0, "no answer after a failed one");
}
