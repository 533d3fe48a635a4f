"""SASL with real, unchanged clients: confluent-kafka and kcat (librdkafka) with PLAIN and both
SCRAMs, kafka-python and kafkajs with both SCRAMs, over SASL_PLAINTEXT. Wrong passwords are
rejected; a client that skips authentication gets nothing; users created online with the admin
API (AlterUserScramCredentials) log in, and users survive a restart."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from compat_checks import topic_name
from conftest import free_port
from secure_broker import (ALL_MECHANISMS, SCRAM_MECHANISMS, kcat_mechanisms, librdkafka_conf,  # noqa: F401
                           start_secure_broker)

MESSAGES = 50
WAIT_S = 30
KCAT = shutil.which("kcat")
NODE = shutil.which("node")
NODE_DIR = Path(__file__).resolve().parent / "node"


def confluent_roundtrip(conf: dict, topic: str) -> list[str]:
    """Produces MESSAGES values (auto-creating the topic) and reads them back; returns them."""
    producer = Producer({**conf, "acks": "all"})
    sent = [f"v{i}" for i in range(MESSAGES)]
    for value in sent:
        producer.produce(topic, value=value.encode())
    assert producer.flush(WAIT_S) == 0, "undelivered messages"
    consumer = Consumer({**conf, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < MESSAGES and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            got.append(message.value().decode())
    consumer.close()
    assert got == sent
    return got


def confluent_auth_error(conf: dict) -> KafkaError:
    """The first error librdkafka reports while trying to connect with `conf`."""
    errors: list[KafkaError] = []
    producer = Producer({**conf, "error_cb": errors.append})
    deadline = time.monotonic() + WAIT_S
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, f"no error within {WAIT_S} s"
    return errors[0]


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
def test_confluent_kafka_logs_in_and_round_trips(start_secure_broker, mechanism):
    broker = start_secure_broker()
    confluent_roundtrip(librdkafka_conf(broker, "SASL_PLAINTEXT", mechanism), topic_name("sasl"))


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
def test_confluent_kafka_wrong_password_is_rejected(start_secure_broker, mechanism):
    broker = start_secure_broker()
    error = confluent_auth_error(librdkafka_conf(broker, "SASL_PLAINTEXT", mechanism, password="wrong"))
    assert error.code() == KafkaError._AUTHENTICATION, error
    assert "Authentication failed" in broker.log_tail() or "failed SASL login" in broker.log_tail()


def test_a_client_that_does_not_authenticate_gets_nothing(start_secure_broker):
    # A PLAINTEXT client on the SASL listener: its first Metadata closes the connection.
    broker = start_secure_broker()
    admin = AdminClient({"bootstrap.servers": broker.address("SASL_PLAINTEXT")})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (bash scripts/setup-test-deps.sh)")
@pytest.mark.parametrize("mechanism", kcat_mechanisms())
def test_kcat_produces_and_consumes(start_secure_broker, mechanism):
    broker = start_secure_broker()
    conf = librdkafka_conf(broker, "SASL_PLAINTEXT", mechanism)
    bootstrap = conf.pop("bootstrap.servers")
    options = [arg for key, value in conf.items() for arg in ("-X", f"{key}={value}")]
    topic = topic_name("kcat-sasl")
    lines = "".join(f"m{i}\n" for i in range(MESSAGES))
    done = subprocess.run([KCAT, "-b", bootstrap, *options, "-P", "-t", topic, "-X", "acks=all"],
                          input=lines, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "ERROR" not in done.stderr, done.stderr
    done = subprocess.run([KCAT, "-b", bootstrap, *options, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"m{i}" for i in range(MESSAGES)]
    wrong = [arg.replace("alice-secret", "nope") for arg in options]
    done = subprocess.run([KCAT, "-b", bootstrap, *wrong, "-L", "-m", "10"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Authentication failed" in done.stderr, done.stderr


@pytest.mark.parametrize("mechanism", SCRAM_MECHANISMS)
def test_kafka_python_scram(start_secure_broker, mechanism, caplog):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTopicPartition
    from kafka.errors import KafkaError as KPError

    broker = start_secure_broker()
    conf = {"bootstrap_servers": broker.address("SASL_PLAINTEXT"), "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism, "sasl_plain_username": "bob", "sasl_plain_password": "bob-secret"}
    topic = topic_name("kpy-sasl")
    producer = KafkaProducer(acks="all", **conf)
    for i in range(MESSAGES):
        producer.send(topic, f"p{i}".encode())
    producer.flush(WAIT_S)
    producer.close()
    consumer = KafkaConsumer(consumer_timeout_ms=10_000, **conf)
    consumer.assign([KTopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    got = [m.value.decode() for _, m in zip(range(MESSAGES), consumer)]
    consumer.close()
    assert got == [f"p{i}" for i in range(MESSAGES)]
    # kafka-python retries its bootstrap until bootstrap_timeout_ms (30 s by default), whatever
    # the failure; what matters is that it was told why. It drops a response that arrives
    # together with the end of the stream, so after its late answer the broker waits for the
    # client to close first (for up to 100 ms), where Kafka closes at once.
    with caplog.at_level(logging.WARNING, logger="kafka"), pytest.raises(KPError):
        KafkaProducer(**{**conf, "sasl_plain_password": "wrong", "bootstrap_timeout_ms": 3_000})
    told = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailedError" in r.getMessage()]
    assert told, "kafka-python never read the broker's authentication failure:\n" + "\n".join(
        r.getMessage() for r in caplog.records)


@pytest.mark.skipif(NODE is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir(),
                    reason="node or kafkajs missing (bash scripts/setup-test-deps.sh)")
@pytest.mark.parametrize("mechanism", SCRAM_MECHANISMS)
def test_kafkajs_scram(start_secure_broker, mechanism):
    broker = start_secure_broker()
    topic = topic_name("kjs-sasl")

    def run(password: str) -> subprocess.CompletedProcess:
        cmd = [NODE, "kafkajs_sasl.js", "--bootstrap", broker.address("SASL_PLAINTEXT"), "--topic", topic,
               "--mechanism", mechanism.lower(), "--user", "alice", "--password", password]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=NODE_DIR,
                              env={**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"})

    done = run("alice-secret")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert topic in result["topics"]
    assert result["produced"] == MESSAGES
    conf = librdkafka_conf(broker, "SASL_PLAINTEXT", "PLAIN")
    consumer = Consumer({**conf, "group.id": "unused"})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    assert (low, high) == (0, MESSAGES)
    refused = run("wrong")
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert "KafkaJSSASLAuthenticationError" in refused.stdout, refused.stdout


def test_users_created_with_the_admin_api_log_in_and_survive_a_restart(start_secure_broker):
    # AlterUserScramCredentials as confluent-kafka's admin sends it (a salted password only).
    broker = start_secure_broker()
    admin = AdminClient(librdkafka_conf(broker, "SASL_PLAINTEXT", "SCRAM-SHA-512", user="admin"))
    upsertions = [UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                               b"dave-secret")]
    for future in admin.alter_user_scram_credentials(upsertions).values():
        future.result(timeout=WAIT_S)
    described = admin.describe_user_scram_credentials(["dave"])["dave"].result(timeout=WAIT_S)
    infos = described.scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_256, 8192)]
    conf = {**librdkafka_conf(broker, "SASL_PLAINTEXT", "SCRAM-SHA-256"), "sasl.username": "dave",
            "sasl.password": "dave-secret"}
    confluent_roundtrip(conf, topic_name("dave"))
    broker.restart()
    confluent_roundtrip(conf, topic_name("dave-after"))
    stored = (broker.data_dir / "credentials.json").read_text()
    assert "dave-secret" not in stored


def test_confluent_kafka_reauthenticates_before_its_session_expires(start_secure_broker):
    # KIP-368: sessions of 5 s; a producer kept busy for 11 s must re-authenticate on its
    # connections (librdkafka does at ~90% of the lifetime, leaving 500 ms of margin), or the
    # broker closes them and the client reconnects: no failure, no new connection.
    mechanism = "SCRAM-SHA-256"
    metrics_port = free_port()
    broker = start_secure_broker("--connections-max-reauth-ms", "5000", "--metrics-listen",
                                 f"127.0.0.1:{metrics_port}")
    conf = librdkafka_conf(broker, "SASL_PLAINTEXT", mechanism)
    failures: list = []
    producer = Producer({**conf, "acks": "all", "linger.ms": 5})
    topic = topic_name("reauth")
    sent = 0
    end = time.monotonic() + 11
    while time.monotonic() < end:
        producer.produce(topic, value=f"r{sent}".encode(),
                         on_delivery=lambda err, _msg: failures.append(err) if err else None)
        sent += 1
        producer.poll(0.05)
    assert producer.flush(WAIT_S) == 0
    assert failures == []
    # Re-authenticated in place: no reconnections (the readiness probe, the producer's bootstrap
    # and broker connections; an expired session would have added one per 5 s).
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    accepted = next(int(line.split()[1]) for line in metrics.splitlines()
                    if line.startswith("ringtail_connections_accepted_total "))
    assert accepted <= 3, f"{accepted} connections: sessions expired instead of re-authenticating"
    consumer = Consumer({**conf, "group.id": "unused"})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    consumer.close()
    assert (low, high) == (0, sent)
