"""The JKS writer/reader: the JDK's own keytool lists what was written, entries merge
without duplicates, bytes are deterministic, bad input is refused."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from closure.recipes.keystore import KeystoreError, pem_certs, read_jks, with_extra_cas, write_jks
from tests.tls import make_ca


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    d = tmp_path_factory.mktemp("ks")
    return make_ca(d / "a"), make_ca(d / "b")


def test_round_trip_and_merge(cas):
    a, b = (c.ca_cert.read_bytes() for c in cas)
    base = write_jks([("first", pem_certs(a)[0])])
    merged = with_extra_cas(base, None, a + b)
    entries = read_jks(merged)
    assert [alias for alias, _ in entries][0] == "first" and len(entries) == 2
    assert {der for _, der in entries} == {pem_certs(a)[0], pem_certs(b)[0]}
    assert with_extra_cas(base, None, a + b) == merged                   # deterministic
    assert len(read_jks(with_extra_cas(b"not a keystore", a, b))) == 2   # from the PEM bundle


def test_bad_keystores_are_refused():
    for data in (b"", b"\xfe\xed\xfe\xed\x00\x00\x00\x02\x00\x00\x00\x05", write_jks([])[:-3]):
        with pytest.raises(KeystoreError):
            read_jks(data)


@pytest.mark.skipif(shutil.which("keytool") is None, reason="needs keytool (a JRE)")
def test_keytool_reads_it(cas, tmp_path):
    ks = tmp_path / "cacerts"
    ks.write_bytes(with_extra_cas(None, cas[0].ca_cert.read_bytes(), cas[1].ca_cert.read_bytes()))
    p = subprocess.run(["keytool", "-list", "-keystore", str(ks), "-storepass", "changeit"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "contains 2 entries" in p.stdout, p.stdout + p.stderr
