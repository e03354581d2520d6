"""Files a data-center deployment needs: TLS certificates and SuperNode keys.

What flwr 1.41 reads (checked in its source):

- ``flower-superlink --ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile
  server.key``: PEM certificates and an unencrypted PEM private key (uvicorn serves the Fleet,
  Control and Runtime HTTP APIs with them). Clients (``flower-supernode --root-certificates``,
  ``root-certificates`` of a ``flwr`` connection) verify the server against ``ca.crt``, so the
  server certificate needs a SAN for every host name or IP address they dial.
- ``flower-supernode --auth-supernode-private-key KEY``: an EC private key in OpenSSH format
  (``load_ssh_private_key``); ``flwr supernode register KEY.pub`` takes the OpenSSH public key
  of a NIST curve (``ssh-keygen -t ecdsa -b 384`` writes the same pair).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from colearn_fl.errors import ConfigError

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1")
CERT_DAYS = 365
RSA_BITS = 2048
NODE_KEY_CURVE = ec.SECP384R1  # P-384, what Flower's docs generate with ssh-keygen


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _san(hostnames: Sequence[str]) -> x509.SubjectAlternativeName:
    """DNS names and IP addresses (an IP must be an IPAddress SAN for TLS to accept it)."""
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def make_certificates(
    folder: str | Path, hostnames: Sequence[str] = DEFAULT_HOSTNAMES
) -> dict[str, Path]:
    """Write a self-signed CA and a server certificate it signs, for the SuperLink's TLS.

    Parameters
    ----------
    folder : str | Path
        Output folder (created); existing files of the same names are replaced.
    hostnames : Sequence[str]
        Host names and IP addresses SuperNodes and ``flwr`` dial; each becomes a SAN
        (default: ``('localhost', '127.0.0.1')``).

    Returns
    -------
    dict[str, Path]
        ``ca.crt``, ``ca.key``, ``server.pem`` and ``server.key`` by file name.
    """
    if not hostnames or any(not str(host).strip() for host in hostnames):
        raise ConfigError(f"hostnames={list(hostnames)!r}: give at least one non-empty host "
                          "name or IP address the SuperNodes will dial (e.g. 127.0.0.1).")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    end = start + datetime.timedelta(days=CERT_DAYS)
    ca_key, server_key = _rsa_key(), _rsa_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "colearn-fl CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                     False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(hostnames[0]))])
    server_cert = (
        x509.CertificateBuilder().subject_name(server_name).issuer_name(ca_name)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san([str(host) for host in hostnames]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = {name: folder / name for name in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)}
    paths[CA_CERT].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[SERVER_CERT].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(paths[CA_KEY], ca_key)
    _write_key(paths[SERVER_KEY], server_key)
    return paths


def make_node_keys(folder: str | Path, names: Sequence[str]) -> dict[str, tuple[Path, Path]]:
    """Write one P-384 key pair per SuperNode: ``<name>`` (private) and ``<name>.pub``.

    Parameters
    ----------
    folder : str | Path
        Output folder (created).
    names : Sequence[str]
        One file name per SuperNode, e.g. ``['site-0', 'site-1']``.

    Returns
    -------
    dict[str, tuple[Path, Path]]
        ``(private key, public key)`` paths by name. The private key (OpenSSH PEM, mode 600)
        goes to ``flower-supernode --auth-supernode-private-key``; the public key (one
        ``ecdsa-sha2-nistp384 ...`` line) to ``flwr supernode register``.
    """
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"names={list(names)!r}: give one distinct name per SuperNode "
                          "(e.g. --names site-0 site-1).")
    for name in names:
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"node key name {name!r}: must be a plain file name such as "
                              "'site-0' (no '/', not hidden).")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in names:
        key = ec.generate_private_key(NODE_KEY_CURVE())
        private, public = folder / name, folder / f"{name}.pub"
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
        private.chmod(0o600)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                         serialization.PublicFormat.OpenSSH)
                           + f" {name}\n".encode())
        written[name] = (private, public)
    return written
