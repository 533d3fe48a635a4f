"""TLS listeners with real clients: confluent-kafka and kcat over SSL and SASL_SSL (PLAIN and both
SCRAMs), mutual TLS (an SSL client without a certificate from the CA is refused; SASL_SSL asks
for none, as Kafka), and fetches of
records larger than one TLS chunk. Certificates come from the openssl CLI, made per test."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from confluent_kafka import KafkaError

from compat_checks import topic_name
from secure_broker import (ALL_MECHANISMS, KCAT_SCRAM_BUG, librdkafka_conf, librdkafka_tls, make_certs,  # noqa: F401
                           start_secure_broker, tls_args)
from test_sasl import MESSAGES, confluent_auth_error, confluent_roundtrip

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="the openssl CLI is missing (bash scripts/setup-test-deps.sh)")
PROTOCOLS = ("SASL_PLAINTEXT", "SSL", "SASL_SSL")


@pytest.fixture
def certs(tmp_path):
    return make_certs(tmp_path / "certs")


def test_confluent_kafka_over_ssl(start_secure_broker, certs):
    broker = start_secure_broker(*tls_args(certs), protocols=PROTOCOLS)
    conf = {**librdkafka_conf(broker, "SSL"), **librdkafka_tls(certs)}
    confluent_roundtrip(conf, topic_name("ssl"))


@pytest.mark.parametrize("mechanism", ALL_MECHANISMS)
def test_confluent_kafka_over_sasl_ssl(start_secure_broker, certs, mechanism):
    broker = start_secure_broker(*tls_args(certs), protocols=PROTOCOLS)
    conf = {**librdkafka_conf(broker, "SASL_SSL", mechanism), **librdkafka_tls(certs)}
    confluent_roundtrip(conf, topic_name("sasl-ssl"))
    wrong = {**librdkafka_conf(broker, "SASL_SSL", mechanism, password="wrong"), **librdkafka_tls(certs)}
    assert confluent_auth_error(wrong).code() == KafkaError._AUTHENTICATION


def test_large_records_cross_tls_chunks(start_secure_broker, certs):
    # Values of 200 KiB: each fetch's record bytes span several 64 KiB TLS chunks.
    from confluent_kafka import Consumer, Producer, TopicPartition

    broker = start_secure_broker(*tls_args(certs), protocols=PROTOCOLS)
    conf = {**librdkafka_conf(broker, "SSL"), **librdkafka_tls(certs)}
    topic = topic_name("ssl-large")
    values = [bytes([i]) * (200 * 1024) for i in range(20)]
    producer = Producer({**conf, "acks": "all", "message.max.bytes": 1_000_000})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0
    consumer = Consumer({**conf, "group.id": "unused"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    while len(got) < len(values):
        message = consumer.poll(10)
        assert message is not None, f"only {len(got)} of {len(values)} records arrived"
        assert message.error() is None, message.error()
        got.append(message.value())
    consumer.close()
    assert got == values


def test_mutual_tls_needs_a_client_certificate(start_secure_broker, certs):
    broker = start_secure_broker(*tls_args(certs, mutual=True), protocols=PROTOCOLS)
    with_cert = {**librdkafka_conf(broker, "SSL"), **librdkafka_tls(certs, client_cert=True)}
    confluent_roundtrip(with_cert, topic_name("mtls"))
    without = {**librdkafka_conf(broker, "SSL"), **librdkafka_tls(certs)}
    error = confluent_auth_error(without)
    assert error.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._AUTHENTICATION), error


def test_sasl_ssl_asks_for_no_client_certificate_under_mutual_tls(start_secure_broker, certs):
    # Kafka ignores ssl.client.auth on SASL_SSL listeners unless it is set for that listener alone
    # (KIP-684): the SASL login is the principal. With --tls-client-ca-file, SASL_SSL clients
    # without a certificate were refused at the handshake.
    broker = start_secure_broker(*tls_args(certs, mutual=True), protocols=PROTOCOLS)
    conf = {**librdkafka_conf(broker, "SASL_SSL", "PLAIN"), **librdkafka_tls(certs)}
    confluent_roundtrip(conf, topic_name("sasl-ssl-no-cert"))
    wrong = {**librdkafka_conf(broker, "SASL_SSL", "PLAIN", password="wrong"), **librdkafka_tls(certs)}
    assert confluent_auth_error(wrong).code() == KafkaError._AUTHENTICATION


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (bash scripts/setup-test-deps.sh)")
@pytest.mark.parametrize("protocol,mechanism", [
    ("SSL", None), ("SASL_SSL", "PLAIN"),
    *[pytest.param("SASL_SSL", m, marks=KCAT_SCRAM_BUG) for m in ("SCRAM-SHA-256", "SCRAM-SHA-512")]])
def test_kcat_over_tls(start_secure_broker, certs, protocol, mechanism):
    broker = start_secure_broker(*tls_args(certs), protocols=PROTOCOLS)
    conf = {**librdkafka_conf(broker, protocol, mechanism), **librdkafka_tls(certs)}
    bootstrap = conf.pop("bootstrap.servers")
    options = [arg for key, value in conf.items() for arg in ("-X", f"{key}={value}")]
    topic = topic_name("kcat-tls")
    lines = "".join(f"t{i}\n" for i in range(MESSAGES))
    done = subprocess.run([KCAT, "-b", bootstrap, *options, "-P", "-t", topic, "-X", "acks=all"],
                          input=lines, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "ERROR" not in done.stderr, done.stderr
    done = subprocess.run([KCAT, "-b", bootstrap, *options, "-C", "-t", topic, "-o", "beginning", "-e", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"t{i}" for i in range(MESSAGES)]
