"""Test PKI for the fake Qlik Sense site and the services under test.

Qlik Sense exports a root CA (``root.pem``), a client certificate and key
(``client.pem``, ``client_key.pem``) and the servers present certificates
signed by that root.  ``make_pki(directory)`` builds the same layout plus the
broken certificates the failure tests need:

===========================  =============================================
file                         what it is
===========================  =============================================
root.pem, root_key.pem       the "Qlik" root CA
server.pem, _key.pem         server cert, SAN DNS:localhost, IP:127.0.0.1
client.pem, _key.pem         client cert, CN "QlikClient", EKU clientAuth
client_key_encrypted.pem     the client key, PKCS#8 with a passphrase
client_key_passphrase.txt    that passphrase (also in the Pki)
other_ca.pem, _key.pem       an unrelated CA
other_server.pem, _key.pem   server cert for localhost signed by other_ca
other_server_chain.pem       other_server.pem followed by other_ca.pem
expired_server.pem, _key     signed by the root, for localhost, expired
mismatch_server.pem, _key    signed by the root, SAN DNS:wrong.example.com
selfsigned_server.pem, _key  self-signed leaf for localhost
pki.json                     manifest read back by ``load_pki``
===========================  =============================================

``issue_ca`` and ``issue_leaf`` make further CAs and certificates one by one
(the poller-tracker link's mutual TLS tests use their own PKIs).

Keys are RSA 2048 by default, like the ones Qlik Sense exports; pass
``key_type="ec"`` for P-256 keys when generation time matters (about ten times
faster).

Command line (run from ``tests/``)::

    /usr/bin/python3 -m support.certs DIR [--key-type rsa|ec]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import ipaddress
import json
import os
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MANIFEST = "pki.json"
CLIENT_COMMON_NAME = "QlikClient"
SERVER_HOSTNAMES = ("localhost",)
SERVER_IPS = ("127.0.0.1",)
MISMATCH_HOSTNAME = "wrong.example.com"


@dataclasses.dataclass(frozen=True)
class Pki:
    """Paths (as strings) of every file written by ``make_pki``."""

    directory: str
    root_ca: str
    root_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    client_key_encrypted: str
    client_key_passphrase: str
    other_ca: str
    other_ca_key: str
    other_server_cert: str
    other_server_key: str
    other_server_chain: str
    expired_server_cert: str
    expired_server_key: str
    mismatch_server_cert: str
    mismatch_server_key: str
    selfsigned_server_cert: str
    selfsigned_server_key: str


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------

def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key(key_type: str):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key_type {key_type!r} (expected 'rsa' or 'ec')")


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                           "qlik-failed-polls tests"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                           "Qlik Sense test PKI"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _subject_alt_names(hostnames, ips) -> x509.SubjectAlternativeName:
    entries = [x509.DNSName(h) for h in hostnames]
    entries += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    return x509.SubjectAlternativeName(entries)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False,
        key_encipherment=not ca, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


@dataclasses.dataclass
class _Issued:
    """A certificate with its private key, kept in memory while building."""

    cert: x509.Certificate
    key: object


def _build(subject: x509.Name, key, issuer: _Issued | None, *,
           ca: bool, not_before: datetime.datetime,
           not_after: datetime.datetime,
           extensions: list[x509.ExtensionType]) -> _Issued:
    """Sign a certificate for ``key``; ``issuer`` None means self-signed."""
    issuer_name = issuer.cert.subject if issuer else subject
    signing_key = issuer.key if issuer else key
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                              critical=True)
               .add_extension(_key_usage(ca=ca), critical=True)
               .add_extension(
                   x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                   critical=False))
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer.key.public_key()),
            critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(signing_key, hashes.SHA256())
    return _Issued(cert=cert, key=key)


def _make_ca(common_name: str, key_type: str) -> _Issued:
    now = _now()
    return _build(_name(common_name), _new_key(key_type), None, ca=True,
                  not_before=now - datetime.timedelta(days=1),
                  not_after=now + datetime.timedelta(days=3650),
                  extensions=[])


def _make_server(common_name: str, issuer: _Issued | None, key_type: str, *,
                 hostnames=SERVER_HOSTNAMES, ips=SERVER_IPS,
                 expired: bool = False) -> _Issued:
    now = _now()
    if expired:
        not_before = now - datetime.timedelta(days=60)
        not_after = now - datetime.timedelta(days=1)
    else:
        not_before = now - datetime.timedelta(days=1)
        not_after = now + datetime.timedelta(days=365)
    extensions = [
        _subject_alt_names(hostnames, ips),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
    ]
    return _build(_name(common_name), _new_key(key_type), issuer, ca=False,
                  not_before=not_before, not_after=not_after,
                  extensions=extensions)


def _make_client(issuer: _Issued, key_type: str) -> _Issued:
    now = _now()
    return _build(_name(CLIENT_COMMON_NAME), _new_key(key_type), issuer,
                  ca=False,
                  not_before=now - datetime.timedelta(days=1),
                  not_after=now + datetime.timedelta(days=365),
                  extensions=[x509.ExtendedKeyUsage(
                      [ExtendedKeyUsageOID.CLIENT_AUTH])])


# --------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------

def _cert_pem(issued: _Issued) -> bytes:
    return issued.cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(issued: _Issued, passphrase: str | None = None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(passphrase.encode())
                  if passphrase else serialization.NoEncryption())
    return issued.key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    encryption)


def _write(path: Path, data: bytes, *, secret: bool = False) -> str:
    path.write_bytes(data)
    os.chmod(path, 0o600 if secret else 0o644)
    return str(path)


def _write_pair(directory: Path, stem: str, issued: _Issued
                ) -> tuple[str, str]:
    """Write ``{stem}.pem`` and ``{stem}_key.pem``; returns their paths."""
    cert = _write(directory / f"{stem}.pem", _cert_pem(issued))
    key = _write(directory / f"{stem}_key.pem", _key_pem(issued), secret=True)
    return cert, key


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------

def make_pki(directory, key_type: str = "rsa") -> Pki:
    """Generate the whole test PKI into ``directory`` (created if missing).

    Existing files of the same names are overwritten.  Returns the ``Pki``
    and also writes it as ``pki.json`` so ``load_pki`` can read it back.
    """
    out = Path(directory).resolve()
    out.mkdir(parents=True, exist_ok=True)

    root = _make_ca("Qlik CA (test)", key_type)
    other_ca = _make_ca("Unrelated CA (test)", key_type)
    passphrase = secrets.token_urlsafe(18)

    root_ca, root_key = _write_pair(out, "root", root)
    server_cert, server_key = _write_pair(
        out, "server", _make_server("localhost", root, key_type))
    client = _make_client(root, key_type)
    client_cert, client_key = _write_pair(out, "client", client)
    client_key_encrypted = _write(out / "client_key_encrypted.pem",
                                  _key_pem(client, passphrase), secret=True)
    _write(out / "client_key_passphrase.txt", passphrase.encode(), secret=True)
    other_ca_cert, other_ca_key = _write_pair(out, "other_ca", other_ca)
    other_server = _make_server("localhost", other_ca, key_type)
    other_server_cert, other_server_key = _write_pair(
        out, "other_server", other_server)
    other_server_chain = _write(out / "other_server_chain.pem",
                                _cert_pem(other_server) + _cert_pem(other_ca))
    expired_cert, expired_key = _write_pair(
        out, "expired_server",
        _make_server("localhost", root, key_type, expired=True))
    mismatch_cert, mismatch_key = _write_pair(
        out, "mismatch_server",
        _make_server(MISMATCH_HOSTNAME, root, key_type,
                     hostnames=(MISMATCH_HOSTNAME,), ips=()))
    selfsigned_cert, selfsigned_key = _write_pair(
        out, "selfsigned_server",
        _make_server("localhost", None, key_type))

    pki = Pki(
        directory=str(out),
        root_ca=root_ca, root_key=root_key,
        server_cert=server_cert, server_key=server_key,
        client_cert=client_cert, client_key=client_key,
        client_key_encrypted=client_key_encrypted,
        client_key_passphrase=passphrase,
        other_ca=other_ca_cert, other_ca_key=other_ca_key,
        other_server_cert=other_server_cert, other_server_key=other_server_key,
        other_server_chain=other_server_chain,
        expired_server_cert=expired_cert, expired_server_key=expired_key,
        mismatch_server_cert=mismatch_cert, mismatch_server_key=mismatch_key,
        selfsigned_server_cert=selfsigned_cert,
        selfsigned_server_key=selfsigned_key,
    )
    _write(out / MANIFEST,
           json.dumps(dataclasses.asdict(pki), indent=2).encode() + b"\n",
           secret=True)
    return pki


def issue_ca(directory, stem: str, common_name: str,
             key_type: str = "ec") -> tuple[str, str]:
    """A new CA as ``{stem}.pem`` and ``{stem}_key.pem`` in ``directory``;
    returns their paths (for the gRPC link's own PKIs: one per trust domain,
    another for "a certificate from another CA", a third for a rotation)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return _write_pair(out, stem, _make_ca(common_name, key_type))


def issue_leaf(directory, stem: str, ca_cert: str, ca_key: str, *,
               server: bool, hostnames=SERVER_HOSTNAMES, ips=SERVER_IPS,
               key_type: str = "ec") -> tuple[str, str]:
    """A certificate signed by the CA in ``ca_cert``/``ca_key``, written as
    ``{stem}.pem`` and ``{stem}_key.pem`` (unencrypted PKCS#8). ``server``:
    EKU serverAuth and SANs from ``hostnames``/``ips``; else EKU clientAuth,
    CN "QlikClient". Returns the two paths."""
    issuer = _Issued(
        cert=x509.load_pem_x509_certificate(Path(ca_cert).read_bytes()),
        key=serialization.load_pem_private_key(Path(ca_key).read_bytes(),
                                               password=None))
    if server:
        common_name = hostnames[0] if hostnames else ips[0]
        issued = _make_server(common_name, issuer, key_type,
                              hostnames=hostnames, ips=ips)
    else:
        issued = _make_client(issuer, key_type)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return _write_pair(out, stem, issued)


def load_pki(directory) -> Pki:
    """Read back a PKI written by ``make_pki`` (from its ``pki.json``)."""
    manifest = Path(directory) / MANIFEST
    data = json.loads(manifest.read_text())
    return Pki(**data)


def ensure_pki(directory, key_type: str = "rsa") -> Pki:
    """``load_pki`` when ``directory`` holds a PKI, else ``make_pki``."""
    if (Path(directory) / MANIFEST).is_file():
        return load_pki(directory)
    return make_pki(directory, key_type)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m support.certs",
        description="Generate the qlik-failed-polls test PKI into DIR.")
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument("--key-type", choices=("rsa", "ec"), default="rsa")
    args = parser.parse_args(argv)
    pki = make_pki(args.directory, args.key_type)
    print(json.dumps(dataclasses.asdict(pki), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
