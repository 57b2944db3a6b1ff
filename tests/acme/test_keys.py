"""daemon.keys: key types, PEM, CSRs, certificate facts, ARI ids. No server."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from daemon import keys
from daemon.keys import KeyFormatError


def make_cert(key, *, serial=0x87654321, aki: bytes | None = b"\x01" * 20, sans=("a.example",),
              cn="a.example", issuer_cn="Test CA", days=90):
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    )
    if aki is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(key_identifier=aki, authority_cert_issuer=None,
                                        authority_cert_serial_number=None), critical=False)
    return builder.sign(key, hashes.SHA256())


def pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def ec_key():
    return keys.generate_private_key("ec256")


@pytest.mark.parametrize("name, kind, size", [
    ("ec256", ec.EllipticCurvePrivateKey, 256), ("ec384", ec.EllipticCurvePrivateKey, 384),
    ("rsa2048", rsa.RSAPrivateKey, 2048), ("rsa3072", rsa.RSAPrivateKey, 3072),
])
def test_generate_by_name_and_name_of_key(name, kind, size):
    key = keys.generate_private_key(name)
    assert isinstance(key, kind) and key.key_size == size
    assert keys.key_type_of(key) == name
    assert keys.key_type_of(key.public_key()) == name


def test_unknown_key_type_and_unsupported_curve():
    with pytest.raises(KeyFormatError, match="unknown key type 'ec521'"):
        keys.generate_private_key("ec521")
    with pytest.raises(KeyFormatError, match="unsupported EC curve"):
        keys.key_type_of(ec.generate_private_key(ec.SECP521R1()))


def test_pem_round_trip_is_pkcs8(ec_key):
    text = keys.private_key_to_pem(ec_key)
    assert text.startswith("-----BEGIN PRIVATE KEY-----")
    again = keys.load_private_key(text)
    assert again.private_numbers() == ec_key.private_numbers()


@pytest.mark.parametrize("data", ["", "not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"])
def test_bad_pem_is_one_typed_line(data):
    with pytest.raises(KeyFormatError) as info:
        keys.load_private_key(data)
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_encrypted_key_is_refused_clearly(ec_key):
    encrypted = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(KeyFormatError, match="encrypted"):
        keys.load_private_key(encrypted)


def test_csr_sans_in_order_and_cn_first_domain(ec_key):
    csr = x509.load_der_x509_csr(keys.build_csr(ec_key, ["b.example", "*.a.example", "a.example"]))
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["b.example", "*.a.example", "a.example"]
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "b.example"
    assert csr.is_signature_valid


def test_csr_cn_left_out_when_first_domain_exceeds_64_bytes(ec_key):
    long_name = ("a" * 60) + ".example"  # 68 bytes
    exactly_64 = ("b" * 56) + ".example"
    assert len(exactly_64) == 64
    csr = x509.load_der_x509_csr(keys.build_csr(ec_key, [long_name, "short.example"]))
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [long_name, "short.example"]
    csr64 = x509.load_der_x509_csr(keys.build_csr(ec_key, [exactly_64]))
    assert csr64.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == exactly_64


def test_certificate_info(ec_key):
    cert = make_cert(ec_key, serial=0x0ABCDEF, sans=("a.example", "*.a.example"))
    info = keys.certificate_info(pem(cert))
    assert info.serial == "abcdef"
    assert info.not_before == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert info.not_after.tzinfo is not None and info.lifetime == dt.timedelta(days=90)
    assert info.sans == ("a.example", "*.a.example")
    assert (info.subject_cn, info.issuer_cn, info.key_type) == ("a.example", "Test CA", "ec256")
    assert info.issuer == "Test CA"
    assert info.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    assert keys.certificate_info(cert.public_bytes(serialization.Encoding.DER)) == info
    with pytest.raises(AttributeError):
        info.serial = "x"  # frozen


def test_split_chain_and_key_match(ec_key):
    other = keys.generate_private_key("ec256")
    a, b = make_cert(ec_key, serial=1), make_cert(other, serial=2)
    text = "junk before\n" + pem(a) + "\n" + keys.private_key_to_pem(ec_key) + pem(b)
    blocks = keys.split_pem_chain(text)
    assert [x509.load_pem_x509_certificate(x.encode()).serial_number for x in blocks] == [1, 2]
    assert keys.key_matches_certificate(ec_key, pem(a))
    assert not keys.key_matches_certificate(ec_key, pem(b))
    with pytest.raises(KeyFormatError, match="no PEM certificate"):
        keys.split_pem_chain(keys.private_key_to_pem(ec_key))
    with pytest.raises(KeyFormatError):
        keys.certificate_info(b"\x30\x03\x02\x01\x01")


def test_ari_cert_id_rfc9773_example(ec_key):
    # RFC 9773 §4.1: AKI keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4
    # and serial 00:87:65:43:21 give "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE".
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    cert = make_cert(ec_key, serial=0x87654321, aki=aki)
    assert keys.ari_cert_id(pem(cert)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_ari_cert_id_needs_aki_and_serial_bytes(ec_key):
    with pytest.raises(KeyFormatError, match="Authority Key Identifier"):
        keys.ari_cert_id(make_cert(ec_key, aki=None))
    assert keys.serial_der_bytes(0x7F) == b"\x7f"
    assert keys.serial_der_bytes(0x80) == b"\x00\x80"
    assert keys.serial_der_bytes(0x0100) == b"\x01\x00"
