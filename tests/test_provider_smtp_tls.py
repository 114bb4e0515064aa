"""The SMTP provider's TLS modes against a TLS-speaking server on loopback.

The provider verifies certificates with ``ssl.create_default_context()``, as a real
deployment must; the tests trust their throw-away CA the way an operator with a private
CA would, through ``SSL_CERT_FILE``, so no verification is switched off anywhere.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from newsletter.config import SmtpSettings
from newsletter.errors import AuthenticationError, ProviderError, TransientProviderError
from newsletter.providers import SmtpProvider
from newsletter.send_models import Outcome
from servers.samples import deliver, outcomes, row
from servers.smtp_sink import SmtpSink

USER, PASSWORD = "mailer", "right-password"


@dataclass(frozen=True)
class _Authority:
    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    pem: Path


@dataclass(frozen=True)
class _Pki:
    trusted: _Authority
    stranger: _Authority
    folder: Path

    def server_context(self, authority: _Authority, *names: str) -> ssl.SSLContext:
        """A server context holding a certificate for ``names`` issued by ``authority``."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt_names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n)
            for n in names
        ]
        cert = (
            _builder(names[0], authority.cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(authority.key, hashes.SHA256())
        )
        stem = self.folder / f"{authority.name}-{'-'.join(names)}"
        cert_file, key_file = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return context


def _builder(common_name: str, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


def _authority(name: str, folder: Path) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    cert = (
        _builder(f"{name} test CA", subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = folder / f"{name}-ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return _Authority(name, cert, key, pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> _Pki:
    folder = tmp_path_factory.mktemp("pki")
    return _Pki(_authority("trusted", folder), _authority("stranger", folder), folder)


@pytest.fixture(autouse=True)
def trust_test_ca(pki: _Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the test CA is trusted: OpenSSL reads these variables on every new context."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.trusted.pem))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)


@pytest.fixture(scope="module")
def good_cert(pki: _Pki) -> ssl.SSLContext:
    return pki.server_context(pki.trusted, "127.0.0.1", "localhost")


@pytest.fixture
def starttls_sink(good_cert: ssl.SSLContext) -> Iterator[SmtpSink]:
    with SmtpSink(username=USER, password=PASSWORD, tls_context=good_cert) as server:
        yield server


def _settings(server: SmtpSink, security: str, **changes: object) -> SmtpSettings:
    fields: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "security": security,
        "username": USER,
        "password": "${TEST_SMTP_PASSWORD}",
        "connections": 2,
        "timeout": 5.0,
    }
    fields.update(changes)
    return SmtpSettings(**fields)  # type: ignore[arg-type]


PEOPLE = [
    row(1, "ann@example.com", "Ann Archer"),
    row(2, "bo@example.com", "Bo Baker"),
    row(3, "cy@example.com", "Cy Cole"),
]


def _assert_delivered_over_tls(server: SmtpSink) -> None:
    received = server.by_recipient()
    assert set(received) == {person[1] for person in PEOPLE}
    for _, address, name, _, _ in PEOPLE:
        item = received[address]
        assert item.tls_version in {"TLSv1.2", "TLSv1.3"}
        message = item.message()
        first = name.split()[0]
        assert message["To"].addresses[0].addr_spec == address
        assert f"Dear {first}," in message.get_body(("plain",)).get_content()
        assert f"<p>Dear {first},</p>" in message.get_body(("html",)).get_content()


def test_starttls_then_login_delivers_every_message_over_tls(starttls_sink: SmtpSink) -> None:
    with SmtpProvider(_settings(starttls_sink, "starttls")) as provider:
        first = deliver(provider, PEOPLE[:2])
        second = deliver(provider, PEOPLE[2:])
    assert outcomes(first) == {1: Outcome.ACCEPTED, 2: Outcome.ACCEPTED}
    assert outcomes(second) == {3: Outcome.ACCEPTED}
    _assert_delivered_over_tls(starttls_sink)
    assert len({item.peer_port for item in starttls_sink.received}) == 1  # one TLS session


def test_implicit_tls_with_login_delivers(good_cert: ssl.SSLContext) -> None:
    with SmtpSink(username=USER, password=PASSWORD, ssl_context=good_cert) as server:
        with SmtpProvider(_settings(server, "ssl")) as provider:
            delivery = deliver(provider, PEOPLE)
        assert outcomes(delivery) == dict.fromkeys((1, 2, 3), Outcome.ACCEPTED)
        _assert_delivered_over_tls(server)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
@pytest.mark.parametrize(
    ("issuer", "names", "problem"),
    [
        ("stranger", ("127.0.0.1", "localhost"), "unable to get local issuer certificate"),
        ("trusted", ("mail.example.org",), "IP address mismatch"),
    ],
    ids=["unknown-ca", "wrong-name"],
)
def test_a_certificate_we_cannot_verify_is_refused_for_good(
    pki: _Pki, security: str, issuer: str, names: tuple[str, ...], problem: str
) -> None:
    context = pki.server_context(getattr(pki, issuer), *names)
    tls = {"tls_context": context} if security == "starttls" else {"ssl_context": context}
    with SmtpSink(username=USER, password=PASSWORD, **tls) as server:  # type: ignore[arg-type]
        with pytest.raises(ProviderError) as caught:
            SmtpProvider(_settings(server, security)).open()
        assert server.received == []
    error = caught.value
    assert not isinstance(error, TransientProviderError)  # retrying cannot fix a certificate
    assert str(error).startswith(
        f"smtp 127.0.0.1:{server.port}: the server's TLS certificate failed verification: "
    )
    assert problem in str(error)
    assert "SSL_CERT_FILE" in str(error)


def test_a_certificate_we_cannot_verify_stops_the_send(pki: _Pki) -> None:
    """A worker's instance connects on its first batch; a certificate retrying cannot fix
    stops the send there, with nothing delivered."""
    context = pki.server_context(pki.stranger, "127.0.0.1", "localhost")
    with SmtpSink(username=USER, password=PASSWORD, tls_context=context) as server:
        provider = SmtpProvider(_settings(server, "starttls"))
        delivery = deliver(provider, PEOPLE)
        provider.close()
        assert server.received == []
    assert outcomes(delivery) == dict.fromkeys((1, 2, 3), Outcome.NOT_DELIVERED)
    assert isinstance(delivery.halt, ProviderError)
    assert "the server's TLS certificate failed verification" in str(delivery.halt)


def test_without_ssl_cert_file_the_test_ca_is_unknown(
    starttls_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without SSL_CERT_FILE the test CA is unknown: proof the variable is what made it pass."""
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(ProviderError, match="certificate failed verification"):
        SmtpProvider(_settings(starttls_sink, "starttls")).open()


def test_login_without_tls_is_refused_with_advice(starttls_sink: SmtpSink) -> None:
    with pytest.raises(AuthenticationError) as caught:
        SmtpProvider(_settings(starttls_sink, "none")).open()
    assert str(caught.value) == (
        f"smtp 127.0.0.1:{starttls_sink.port}: the server offers AUTH only after STARTTLS, "
        "and provider.smtp.security is none\n"
        "  hint: set provider.smtp.security to starttls so the password travels encrypted"
    )
    assert starttls_sink.received == []


def test_mail_without_tls_is_refused_with_advice(starttls_sink: SmtpSink) -> None:
    settings = _settings(starttls_sink, "none", username=None, password=None)
    with SmtpProvider(settings) as provider:
        delivery = deliver(provider, PEOPLE)
    assert outcomes(delivery) == dict.fromkeys((1, 2, 3), Outcome.NOT_DELIVERED)
    assert isinstance(delivery.halt, AuthenticationError)
    assert delivery.halt.status == 530
    assert str(delivery.halt).startswith(
        f"smtp 127.0.0.1:{starttls_sink.port}: the server takes mail only after STARTTLS "
        "or a login: 530 Must issue a STARTTLS command first\n"
        "  hint: set provider.smtp.security to starttls"
    )
    assert starttls_sink.received == []


def test_starttls_against_a_server_without_it_names_the_setting() -> None:
    with SmtpSink() as server:
        settings = _settings(server, "starttls", username=None, password=None)
        with pytest.raises(ProviderError) as caught:
            SmtpProvider(settings).open()
    assert not isinstance(caught.value, TransientProviderError)
    assert str(caught.value).startswith(
        f"smtp 127.0.0.1:{server.port}: the server does not offer STARTTLS\n"
        "  hint: check provider.smtp.security and port"
    )


def test_implicit_tls_against_a_plain_server_names_the_setting() -> None:
    with SmtpSink() as server:
        settings = _settings(server, "ssl", username=None, password=None)
        with pytest.raises(ProviderError) as caught:
            SmtpProvider(settings).open()
    assert not isinstance(caught.value, TransientProviderError)
    message = str(caught.value)
    assert message.startswith(
        f"smtp 127.0.0.1:{server.port}: the TLS handshake failed: "
        "the server answered in plain text, not TLS\n"
    )
    assert "ssl for TLS from the first byte (usually port 465)" in message
