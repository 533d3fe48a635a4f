"""A `ringtail` with several listeners (PLAINTEXT plus SASL_PLAINTEXT, and the TLS ones when
asked), users created beforehand with `ringtail users add`, and helpers to configure clients.

Readiness is probed on the PLAINTEXT listener; the other listeners are bound in the same start
step before the broker accepts anything, so they are ready too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import Broker, BrokerPool, fail_if_any, free_port

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
ALL_MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)
# Debian's kcat links librdkafka 2.0.2, whose SCRAM client-final repeats the client nonce
# ("r=" cnonce + cnonce snonce); RFC 5802 and Kafka's ScramSaslServer (equals) refuse it, and so
# does Ringtail. confluent-kafka's newer librdkafka logs in fine (test_sasl.py). Marked xfail
# (strict: the day kcat is fixed, the test says so).
KCAT_SCRAM_BUG = pytest.mark.xfail(strict=True, reason="kcat's librdkafka 2.0.2 sends a malformed SCRAM "
                                   "nonce, refused as by Kafka (see secure_broker.py)")


def kcat_mechanisms() -> list:
    return ["PLAIN", *[pytest.param(m, marks=KCAT_SCRAM_BUG) for m in SCRAM_MECHANISMS]]


# Users every secure broker starts with, each with both SCRAM credentials.
USERS = {"alice": "alice-secret", "admin": "admin-secret", "bob": "bob-secret"}


class SecureBroker(Broker):
    def __init__(self, *args, protocols: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.ports = {"PLAINTEXT": self.port, **{p: free_port() for p in protocols}}

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--listen")
        del cmd[at:at + 2]
        listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in self.ports.items())
        return [cmd[0], "--listeners", listeners, *cmd[1:]]

    def listen_ports(self) -> list[int]:
        return list(self.ports.values())

    def pick_new_ports(self) -> None:
        super().pick_new_ports()
        self.ports = {name: self.port if name == "PLAINTEXT" else free_port() for name in self.ports}

    def address(self, protocol: str) -> str:
        return f"127.0.0.1:{self.ports[protocol]}"


def add_user(ringtail_bin: Path, data_dir: Path, name: str, password: str, mechanism: str) -> None:
    done = subprocess.run([str(ringtail_bin), "users", "add", name, "--mechanism", mechanism,
                           "--password-stdin", "--data-dir", str(data_dir)],
                          input=password + "\n", capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"ringtail users add {name}: {done.stderr}"


@pytest.fixture
def start_secure_broker(ringtail_bin, tmp_path, request):
    """Factory: `start_secure_broker(*extra_args, protocols=("SASL_PLAINTEXT",))`.

    Authenticated principals get what no ACL forbids (`--allow-everyone-if-no-acl-found`), so the
    authentication tests need no ACLs; `open_acls=False` starts with the default (denied unless
    an ACL allows, test_acls.py)."""
    pool = BrokerPool(request)

    def start(*extra_args: str, protocols: tuple[str, ...] = ("SASL_PLAINTEXT",),
              users: dict[str, str] = USERS, open_acls: bool = True) -> SecureBroker:
        n = len(pool)
        data_dir = tmp_path / f"secure-{n}-data"
        data_dir.mkdir()
        for name, password in users.items():
            for mechanism in SCRAM_MECHANISMS:
                add_user(ringtail_bin, data_dir, name, password, mechanism)
        acl_args = ["--allow-everyone-if-no-acl-found"] if open_acls else []
        return pool.start(SecureBroker(ringtail_bin, data_dir, tmp_path / f"secure-{n}.log", [*acl_args, *extra_args],
                                       free_port(), protocols=protocols))

    yield start
    fail_if_any(pool.stop_all())


def librdkafka_conf(broker: SecureBroker, protocol: str, mechanism: str | None = None,
                    user: str = "alice", password: str | None = None) -> dict:
    """confluent-kafka / kcat settings for one listener."""
    conf = {"bootstrap.servers": broker.address(protocol), "security.protocol": protocol}
    if mechanism is not None:
        conf.update({"sasl.mechanisms": mechanism, "sasl.username": user,
                     "sasl.password": USERS[user] if password is None else password})
    return conf


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def make_certs(directory: Path) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate
    (CN=client-app,O=ringtail-tests), all P-256, valid two days, made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=ringtail-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    for name, subject, extensions in [
        ("server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "/O=ringtail-tests/CN=client-app", "extendedKeyUsage=clientAuth\n"),
    ]:
        (directory / f"{name}.ext").write_text("basicConstraints=CA:FALSE\n" + extensions)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)
    return {name: directory / name for name in
            ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def tls_args(certs: dict[str, Path], mutual: bool = False) -> list[str]:
    args = ["--tls-cert-file", str(certs["server.pem"]), "--tls-key-file", str(certs["server.key"])]
    if mutual:
        args += ["--tls-client-ca-file", str(certs["ca.pem"])]
    return args


def librdkafka_tls(certs: dict[str, Path], client_cert: bool = False) -> dict:
    conf = {"ssl.ca.location": str(certs["ca.pem"])}
    if client_cert:
        conf.update({"ssl.certificate.location": str(certs["client.pem"]),
                     "ssl.key.location": str(certs["client.key"])})
    return conf
