"""colearn_fl.deploy.tls: certificates and SuperNode keys; the CLI's deploy commands (no
Flower processes)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from colearn_fl.cli import main
from colearn_fl.deploy.tls import make_certificates, make_node_keys
from colearn_fl.errors import ConfigError
from tests.tiny import fake_fashion_mnist


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A tiny Fashion-MNIST look-alike (``tests.tiny.fake_fashion_mnist``)."""
    return fake_fashion_mnist(tmp_path / "source")


def test_certificates_chain_to_the_ca_with_the_sans(tmp_path: Path) -> None:
    # Execute
    paths = make_certificates(tmp_path, hostnames=("localhost", "127.0.0.1", "link.dc"))
    # Assert
    ca = x509.load_pem_x509_certificate(paths["ca.crt"].read_bytes())
    server = x509.load_pem_x509_certificate(paths["server.pem"].read_bytes())
    assert server.issuer == ca.subject
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes, padding.PKCS1v15(),
                           server.signature_hash_algorithm)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "link.dc"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    key = serialization.load_pem_private_key(paths["server.key"].read_bytes(), None)
    assert key.public_key().public_numbers() == server.public_key().public_numbers()
    assert paths["server.key"].stat().st_mode & 0o077 == 0


def test_certificates_need_a_hostname(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="hostnames"):
        make_certificates(tmp_path, hostnames=())


def test_node_keys_are_openssh_p384_pairs(tmp_path: Path) -> None:
    # Execute
    pairs = make_node_keys(tmp_path, ["site-0", "site-1"])
    # Assert: the loaders flower-supernode and `flwr supernode register` use
    publics = []
    for private_path, public_path in pairs.values():
        private = serialization.load_ssh_private_key(private_path.read_bytes(), None)
        public = serialization.load_ssh_public_key(public_path.read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert isinstance(private.curve, ec.SECP384R1)
        assert private.public_key().public_numbers() == public.public_numbers()
        publics.append(public.public_numbers())
    assert publics[0] != publics[1]


@pytest.mark.parametrize("names", [[], ["a", "a"], ["../a"]])
def test_node_keys_refuse_bad_names(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(ConfigError, match="name"):
        make_node_keys(tmp_path, names)


def test_cli_deploy_writes_every_file(source: Path, tmp_path: Path, capsys) -> None:
    # Execute
    codes = [
        main(["deploy", "certs", "--out", str(tmp_path / "certs")]),
        main(["deploy", "node-keys", "--out", str(tmp_path / "keys"), "--names", "a", "b"]),
        main(["deploy", "shards", "--out", str(tmp_path / "shards"), "--sites", "2",
              "--source", str(source), "--max-samples", "10"]),
        main(["deploy", "node-keys", "--out", str(tmp_path / "keys"), "--names", "a", "a"]),
    ]
    # Assert
    assert codes == [0, 0, 0, 2]
    assert {p.name for p in (tmp_path / "certs").iterdir()} == {
        "ca.crt", "ca.key", "server.pem", "server.key"}
    assert {p.name for p in (tmp_path / "keys").iterdir()} == {"a", "a.pub", "b", "b.pub"}
    assert f"data-dir='{tmp_path / 'shards' / 'site-1'}'" in capsys.readouterr().out
