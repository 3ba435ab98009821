#!/usr/bin/env python3
"""Builds the tiny MaxMind-format databases the enrichment tests read.

There is no MaxMind DB writer for Rust, so the fixtures are made here with the
PyPI package `mmdb-writer` and checked in; CI only reads them. Run it again only
when the fixtures must change:

    python3 -m venv /tmp/mmdb && /tmp/mmdb/bin/pip install mmdb-writer==0.2.7
    /tmp/mmdb/bin/python scripts/make-test-mmdb.py

Every address and number is from a range set aside for documentation, so the
files can never be mistaken for real data:
- 203.0.113.0/24 is TEST-NET-3 (RFC 5737);
- AS64496 is a documentation ASN (RFC 5398).

Output, in crates/server/tests/fixtures/enrich/:
- test-city.mmdb: GeoLite2-City layout, country DE / Germany for 203.0.113.0/24;
- test-asn.mmdb: GeoLite2-ASN layout, AS64496 "Example Networks" for the same range;
- test-combined.mmdb: both kinds of field in one record, for the "one database
  holds both" setup.
"""

from pathlib import Path

from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/server/tests/fixtures/enrich"
NETWORK = IPSet(["203.0.113.0/24"])

COUNTRY = {
    "country": {
        "iso_code": "DE",
        "names": {"en": "Germany", "de": "Deutschland"},
    },
}
# GeoLite2-ASN stores the number as uint32; say so rather than let the writer
# pick the smallest type, so the fixture has the real layout.
ASN = {
    "autonomous_system_number": MmdbU32(64496),
    "autonomous_system_organization": "Example Networks",
}


def write(name: str, database_type: str, record: dict) -> None:
    # ip_version=6 with ipv4_compatible=True is how MaxMind ships its databases:
    # one IPv6 tree that also answers IPv4 look-ups.
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en", "de"],
        # The format wants a description in every language the file names.
        description={
            "en": "canarykeys test fixture, documentation addresses only",
            "de": "canarykeys Testdaten, nur Dokumentationsadressen",
        },
    )
    writer.insert_network(NETWORK, record)
    path = OUT / name
    writer.to_db_file(str(path))
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write("test-city.mmdb", "GeoLite2-City", COUNTRY)
    write("test-asn.mmdb", "GeoLite2-ASN", ASN)
    write("test-combined.mmdb", "canarykeys-test-combined", {**COUNTRY, **ASN})


if __name__ == "__main__":
    main()
