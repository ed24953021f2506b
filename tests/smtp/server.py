"""A real SMTP server for Sparky's email tests: aiosmtpd (PyPI `aiosmtpd`, installed by
./scripts/test) on 127.0.0.1, which requires STARTTLS before anything else and a login
before mail. Its certificate comes from a test CA it makes (written to CERTS/ca.pem for
the client to trust). Each mail it takes is written to MAILS/<n>.json with its
envelope, its text, whether the session was under TLS and who logged in.

    python3 server.py --port P --mails DIR --certs DIR --user U --password PW --parent PID

It prints `ready` once it listens, and exits when the process PARENT is gone.
"""

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_certs(folder):
    """A CA, and a certificate for 127.0.0.1 and localhost signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sparky test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    with open(os.path.join(folder, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(folder, "server.pem"), "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(os.path.join(folder, "server.key"), "wb") as f:
        f.write(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )


class Keep:
    """Writes each mail taken to the mails folder."""

    def __init__(self, folder):
        self.folder = folder
        self.count = len(os.listdir(folder))

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        mail = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "text": envelope.content.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
            "login": session.auth_data if session.authenticated else None,
        }
        path = os.path.join(self.folder, f"{self.count}.json")
        with open(path + ".part", "w") as f:
            json.dump(mail, f)
        os.rename(path + ".part", path)
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    for name in ("port", "parent"):
        ap.add_argument(f"--{name}", type=int, required=True)
    for name in ("mails", "certs", "user", "password"):
        ap.add_argument(f"--{name}", required=True)
    args = ap.parse_args()

    if not os.path.exists(os.path.join(args.certs, "ca.pem")):
        make_certs(args.certs)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(args.certs, "server.pem"), os.path.join(args.certs, "server.key"))

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == args.user and auth_data.password.decode() == args.password
        # handled=False: aiosmtpd answers a refusal with 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode())

    controller = Controller(
        Keep(args.mails),
        hostname="127.0.0.1",
        port=args.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            try:
                os.kill(args.parent, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
