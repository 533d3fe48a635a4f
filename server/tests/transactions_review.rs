//! Transactions and idempotent producers as a hostile or unlucky client meets them (found by
//! review): races between the coordinator's timeout tick and the producer's own calls, and the
//! produce-side checks a client can sidestep.

mod common;

use std::time::{Duration, Instant};

use common::client::{now_ms, str_bytes as name, Client};
use common::start_broker;
use common::txn::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

/// Polls until the tick has aborted `txn` (a generous deadline: it aborts hundreds of ids
/// before it, one fsync after another, on a machine the test shares).
fn wait_long_for_abort(client: &mut Client, txn: &str) {
    let started = Instant::now();
    loop {
        let seen = txn_state(client, txn);
        if seen == "CompleteAbort" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{txn} stayed {seen}, never aborted by its timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One attempt at the race: `others` transactional ids and the victim (sorted last) all time
/// out in the same tick; while the tick aborts the others one by one, the victim's producer
/// commits its (timed-out but not yet aborted) transaction and starts a new one on `late`.
/// Returns None when the tick reached the victim before its producer was done (the window was
/// missed), else the victim's producer and whether the second transaction's EndTxn succeeded.
fn race_once(client: &mut Client, round: usize, others: usize) -> Option<(Producer, i16)> {
    let victim = format!("zz-victim-{round}");
    let first = format!("a{round}-0000");
    let last = format!("a{round}-{:04}", others - 1);
    // Every transaction of this round times out at `deadline` (each id gets the timeout that
    // leads there from its start), the victim a little earlier so it is due in the same tick.
    let setup_budget_ms = 4_000 + 50 * others as i64;
    let deadline = now_ms() + setup_budget_ms;
    let timeout_to = |at: i64| {
        let timeout = at - now_ms();
        assert!(timeout > 0, "the setup took longer than its budget");
        i32::try_from(timeout).unwrap()
    };
    for index in 0..others {
        let id = format!("a{round}-{index:04}");
        let (error, producer) = init(client, &id, timeout_to(deadline));
        assert_eq!(error, 0);
        assert_eq!(add_partitions(client, &id, producer, "out", &[0]), vec![0]);
    }
    let (error, producer) = init(client, &victim, timeout_to(deadline - 20));
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(client, &victim, producer, "out", &[0]),
        vec![0]
    );
    assert_eq!(
        client
            .produce("out", 0, txn_batch(producer, 0, 2))
            .error_code,
        0
    );
    assert_eq!(txn_state(client, &first), "Ongoing");
    // The tick has started aborting this round's ids: the victim is in its list, still Ongoing.
    let started = Instant::now();
    while txn_state(client, &first) == "Ongoing" {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the timeout never aborted {first}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // The producer, unaware, commits and starts its next transaction on another partition.
    let committed = end_txn(client, &victim, producer, true);
    if committed == PRODUCER_FENCED {
        return None;
    }
    assert_eq!(committed, 0);
    assert_eq!(
        add_partitions(client, &victim, producer, "late", &[0]),
        vec![0]
    );
    let produced = client
        .produce("late", 0, txn_batch(producer, 2, 3))
        .error_code;
    if produced != 0 || txn_state(client, &last) == "CompleteAbort" {
        // The tick may have reached the victim already: this round proves nothing.
        wait_long_for_abort(client, &last);
        return None;
    }
    // Once the tick is through with this round, the victim's second transaction ends.
    wait_long_for_abort(client, &last);
    std::thread::sleep(Duration::from_millis(500));
    let second = end_txn(client, &victim, producer, true);
    Some((producer, second))
}

#[test]
fn the_timeout_tick_never_aborts_a_transaction_that_ended_while_it_waited() {
    // The tick lists the timed-out transactions, then aborts them one by one, awaiting each.
    // It used the state it listed: a transaction its producer committed meanwhile (and the next
    // one it started) was "aborted" from that stale copy — the producer fenced although its
    // commit had succeeded, and the new transaction's partition left open for ever (its last
    // stable offset stuck, read_committed consumers blocked) because the abort went only to the
    // stale copy's partitions.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    assert_eq!(client.create_topic("late", 1, &[]), 0);
    let mut outcome = None;
    for (round, others) in [(0, 150), (1, 300), (2, 300), (3, 600)] {
        outcome = race_once(&mut client, round, others);
        if outcome.is_some() {
            break;
        }
    }
    let (victim, second_commit) = outcome.expect("the race window was never hit in 4 rounds");
    assert_eq!(
        second_commit, 0,
        "the producer's next transaction commits: it was never fenced"
    );
    let fetched = fetch_isolated(&mut client, "late", 0, 1);
    let (stable, high) = (fetched.last_stable_offset, fetched.high_watermark);
    assert_eq!(
        stable, high,
        "the second transaction is closed: nothing holds the last stable offset"
    );
    let log = batches(&client.fetch_records("out", 0, 0));
    let victim_markers: Vec<_> = log
        .iter()
        .filter(|(control, id, ..)| *control && *id == victim.id)
        .map(|(_, _, epoch, marker, _)| (*epoch, *marker))
        .collect();
    assert_eq!(
        victim_markers,
        vec![(victim.epoch, Some(1))],
        "the committed transaction's partition holds its COMMIT and nothing else"
    );
}

/// A connection to the SASL listener, logged in as `user` with PLAIN.
fn login(broker: &common::sasl::SaslBroker, user: &str) -> Client {
    let mut client = Client::connect_port(broker.sasl_port);
    let handshake = SaslHandshakeRequest::default().with_mechanism(name("PLAIN"));
    let answer: SaslHandshakeResponse = client.call(ApiKey::SaslHandshake, 1, &handshake);
    assert_eq!(answer.error_code, 0);
    let token = format!("\0{user}\0{user}-secret");
    let auth =
        SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(token.into_bytes()));
    let answer: SaslAuthenticateResponse = client.call(ApiKey::SaslAuthenticate, 2, &auth);
    assert_eq!(answer.error_code, 0, "{user} logs in");
    client
}

/// ALLOW `principal` `operation` on the literal resource (`resource_type`, `resource`).
fn grant(admin: &mut Client, resource_type: i8, resource: &str, principal: &str, operation: i8) {
    let creation = create_acls_request::AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(name(resource))
        .with_resource_pattern_type(3)
        .with_principal(name(principal))
        .with_host(name("*"))
        .with_operation(operation)
        .with_permission_type(3);
    let request = CreateAclsRequest::default().with_creations(vec![creation]);
    let answer: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &request);
    assert_eq!(answer.results[0].error_code, 0);
}

/// Produce v9 of one record set with the request's `transactional_id`: the partition's error.
fn produce_as(client: &mut Client, transactional_id: Option<&str>, records: Vec<u8>) -> i16 {
    let request = ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|id| TransactionalId(name(id))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(common::client::topic_name("shared"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records.into()))])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    response.responses[0].partition_responses[0].error_code
}

const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

#[test]
fn transactional_records_belong_to_the_transactional_id_the_request_names() {
    // Kafka refuses transactional records in a Produce without a transactional id
    // (TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and verifies the producer id against the id the
    // request names. The registry only looked at the producer id: a principal with WRITE on the
    // topic but not on alice's transactional id wrote into alice's open transaction (with no
    // id, or with an id of its own), and alice's commit made those records hers.
    let dir = tempfile::tempdir().unwrap();
    for user in ["admin", "alice", "mallory"] {
        common::sasl::add_user(dir.path(), user, "SCRAM-SHA-256", &format!("{user}-secret"));
    }
    let broker = common::sasl::start_sasl(dir.path(), &["--super-users", "User:admin"]);
    let mut admin = login(&broker, "admin");
    assert_eq!(admin.create_topic("shared", 1, &[]), 0);
    const TOPIC: i8 = 2;
    const TRANSACTIONAL_ID: i8 = 5;
    const WRITE: i8 = 4;
    grant(&mut admin, TOPIC, "shared", "User:alice", WRITE);
    grant(
        &mut admin,
        TRANSACTIONAL_ID,
        "alice-tx",
        "User:alice",
        WRITE,
    );
    grant(&mut admin, TOPIC, "shared", "User:mallory", WRITE);
    grant(
        &mut admin,
        TRANSACTIONAL_ID,
        "mallory-tx",
        "User:mallory",
        WRITE,
    );

    let mut alice = login(&broker, "alice");
    let (error, producer) = init(&mut alice, "alice-tx", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(&mut alice, "alice-tx", producer, "shared", &[0]),
        vec![0]
    );
    assert_eq!(
        produce_as(&mut alice, Some("alice-tx"), txn_batch(producer, 0, 1)),
        0
    );

    let mut mallory = login(&broker, "mallory");
    let (error, _) = init(&mut mallory, "mallory-tx", 60_000);
    assert_eq!(error, 0);
    assert_eq!(
        produce_as(&mut mallory, None, txn_batch(producer, 1, 1)),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        "transactional records need a transactional id"
    );
    assert_eq!(
        produce_as(&mut mallory, Some("mallory-tx"), txn_batch(producer, 1, 1)),
        INVALID_TXN_STATE,
        "alice's producer is not mallory-tx's"
    );
    // Alice's transaction goes on undisturbed and holds only her record.
    assert_eq!(
        produce_as(&mut alice, Some("alice-tx"), txn_batch(producer, 1, 1)),
        0
    );
    assert_eq!(end_txn(&mut alice, "alice-tx", producer, true), 0);
    let log = batches(&admin.fetch_records("shared", 0, 0));
    let records: usize = log
        .iter()
        .filter(|(control, ..)| !control)
        .map(|batch| batch.4)
        .sum();
    assert_eq!(records, 2, "{log:?}");
}

#[test]
fn fenced_producers_on_old_versions_get_invalid_producer_epoch() {
    // PRODUCER_FENCED (90) came with KIP-588: AddPartitionsToTxn, AddOffsetsToTxn and EndTxn v2.
    // Kafka answers older versions INVALID_PRODUCER_EPOCH (47), which older clients know as
    // their fencing; they got an error code they could not interpret.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    let (_, zombie) = init(&mut client, "fenced", 60_000);
    let (_, current) = init(&mut client, "fenced", 60_000);
    assert!(current.epoch > zombie.epoch);
    for version in 0..=4i16 {
        let expected = if version < 2 {
            INVALID_PRODUCER_EPOCH
        } else {
            PRODUCER_FENCED
        };
        let end = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(name("fenced")))
            .with_producer_id(ProducerId(zombie.id))
            .with_producer_epoch(zombie.epoch)
            .with_committed(true);
        let ended: EndTxnResponse = client.call(ApiKey::EndTxn, version, &end);
        assert_eq!(ended.error_code, expected, "EndTxn v{version}");
        let add_offsets = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(name("fenced")))
            .with_producer_id(ProducerId(zombie.id))
            .with_producer_epoch(zombie.epoch)
            .with_group_id(GroupId(name("g")));
        let added: AddOffsetsToTxnResponse =
            client.call(ApiKey::AddOffsetsToTxn, version, &add_offsets);
        assert_eq!(added.error_code, expected, "AddOffsetsToTxn v{version}");
        if version <= 3 {
            let add = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(name("fenced")))
                .with_v3_and_below_producer_id(ProducerId(zombie.id))
                .with_v3_and_below_producer_epoch(zombie.epoch)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(common::client::topic_name("out"))
                        .with_partitions(vec![0]),
                ]);
            let added: AddPartitionsToTxnResponse =
                client.call(ApiKey::AddPartitionsToTxn, version, &add);
            assert_eq!(
                added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
                expected,
                "AddPartitionsToTxn v{version}"
            );
        }
    }
}

#[test]
fn txn_offset_commit_refuses_metadata_over_kafkas_limit() {
    // Kafka refuses offset metadata longer than offset.metadata.max.bytes (4096) with
    // OFFSET_METADATA_TOO_LARGE for that partition, committing the others. TxnOffsetCommit took
    // any length: each of a producer's 100,000 pending offsets could hold a metadata string as
    // long as the request, all kept in memory until the transaction ends.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    assert_eq!(client.create_topic("out", 1, &[]), 0);
    assert_eq!(client.create_topic("in", 2, &[]), 0);
    let (_, producer) = init(&mut client, "meta", 60_000);
    assert_eq!(add_offsets(&mut client, "meta", producer, "g"), 0);
    let (at_limit, over) = ("x".repeat(4096), "x".repeat(4097));
    let partitions = vec![
        txn_offset(0, 10, Some(&at_limit)),
        txn_offset(1, 11, Some(&over)),
    ];
    let request = txn_offset_commit_request("meta", producer, "g", "in", partitions);
    let response: TxnOffsetCommitResponse = client.call(ApiKey::TxnOffsetCommit, 3, &request);
    let errors: Vec<i16> = response.topics[0]
        .partitions
        .iter()
        .map(|partition| partition.error_code)
        .collect();
    const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    assert_eq!(errors, vec![0, OFFSET_METADATA_TOO_LARGE]);
    assert_eq!(end_txn(&mut client, "meta", producer, true), 0);
    let fetched = fetch_offsets(&mut client, 7, "g", "in", Some(&[0, 1]), false);
    let offsets: Vec<(i32, i64)> = fetched
        .iter()
        .map(|(_, partition, _, offset)| (*partition, *offset))
        .collect();
    assert_eq!(
        offsets,
        vec![(0, 10), (1, -1)],
        "only the valid one is committed"
    );
}

#[test]
fn a_txn_offset_commit_racing_its_end_txn_is_never_left_pending() {
    // A client that sends TxnOffsetCommit and EndTxn at once (two connections): the offsets
    // are either part of the transaction (committed with it) or refused, never left pending
    // after the transaction ended — a pending offset without its marker answers
    // UNSTABLE_OFFSET_COMMIT to the group's read_committed consumers for ever.
    let broker = start_broker(&[]);
    let mut first = Client::connect(&broker);
    let mut second = Client::connect(&broker);
    assert_eq!(first.create_topic("in", 1, &[]), 0);
    for round in 0..40i64 {
        let (error, producer) = init(&mut first, "racer", 60_000);
        assert_eq!(error, 0);
        assert_eq!(add_offsets(&mut first, "racer", producer, "g"), 0);
        let partitions = vec![txn_offset(0, 100 + round, None)];
        let commit = txn_offset_commit_request("racer", producer, "g", "in", partitions);
        let end = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(name("racer")))
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch)
            .with_committed(true);
        first.send(ApiKey::TxnOffsetCommit, 3, &commit).unwrap();
        second.send(ApiKey::EndTxn, 3, &end).unwrap();
        let committed: TxnOffsetCommitResponse = first.receive(ApiKey::TxnOffsetCommit, 3).unwrap();
        let mut ended: EndTxnResponse = second.receive(ApiKey::EndTxn, 3).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while ended.error_code == 51 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            ended = second.call(ApiKey::EndTxn, 3, &end);
        }
        assert_eq!(ended.error_code, 0, "round {round}");
        let fetched = fetch_offsets(&mut first, 7, "g", "in", Some(&[0]), true);
        assert_ne!(
            fetched[0].2, UNSTABLE_OFFSET_COMMIT,
            "round {round}: an offset left pending after its transaction ended (TxnOffsetCommit answered {})",
            committed.topics[0].partitions[0].error_code
        );
        if committed.topics[0].partitions[0].error_code == 0 {
            assert_eq!(
                fetched[0].3,
                100 + round,
                "round {round}: committed with the transaction"
            );
        }
    }
}

#[test]
fn a_retried_kip_360_epoch_bump_gets_the_bumped_epoch_and_an_older_one_stays_fenced() {
    // Kafka's TransactionMetadata.prepareIncrementProducerEpoch: a producer's InitProducerId
    // naming its current epoch bumps it and remembers the epoch it bumped from, so the same
    // request retried (its answer lost) gets the bumped epoch back, not PRODUCER_FENCED, a
    // fatal error for the client. An epoch before that, or one fenced by a new producer's
    // InitProducerId (which forgets the remembered one), stays fenced.
    let broker = start_broker(&[]);
    let mut client = Client::connect(&broker);
    let bump = |client: &mut Client, producer: Producer| -> InitProducerIdResponse {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(name("kip360"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch);
        client.call(ApiKey::InitProducerId, 4, &request)
    };
    let (_, first) = init(&mut client, "kip360", 60_000);
    let at = |epoch: i16| Producer {
        id: first.id,
        epoch,
    };
    let bumped = bump(&mut client, first);
    assert_eq!(
        (bumped.error_code, bumped.producer_epoch),
        (0, first.epoch + 1)
    );
    let second = at(bumped.producer_epoch);
    let bumped = bump(&mut client, second);
    assert_eq!(
        (bumped.error_code, bumped.producer_epoch),
        (0, second.epoch + 1)
    );
    let retried = bump(&mut client, second);
    assert_eq!(
        (
            retried.error_code,
            retried.producer_id.0,
            retried.producer_epoch
        ),
        (0, first.id, second.epoch + 1),
        "the retry gets the bumped epoch, not a second bump"
    );
    assert_eq!(
        bump(&mut client, first).error_code,
        PRODUCER_FENCED,
        "older than the remembered epoch"
    );
    // A new producer (no epoch named) takes over: the remembered epoch no longer counts.
    let (_, next) = init(&mut client, "kip360", 60_000);
    assert_eq!(next.epoch, second.epoch + 2);
    assert_eq!(
        bump(&mut client, at(second.epoch + 1)).error_code,
        PRODUCER_FENCED
    );
}
