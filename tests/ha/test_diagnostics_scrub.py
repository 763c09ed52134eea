"""Diagnostics scrub secrets from values, not only from the keys they were configured under."""

from __future__ import annotations

from custom_components.dynamic_export.diagnostics import REDACTED, _secrets, scrub


def test_secrets_are_found_under_sensitive_keys_at_any_depth() -> None:
    entry = {
        "data": {"host": "inverter.lan", "unit_id": 1},
        "subentries": [
            {"unique_id": "SN123456", "data": {"inverters": [{"serial": 116180400144}]}},
            {"data": {"dcap_url": "https://utility.example:8443/dcap"}},
        ],
    }
    found = set(_secrets(entry))
    assert {"inverter.lan", "SN123456", "116180400144", "utility.example"} <= found
    assert "1" not in found  # the unit id is not under a sensitive key


def test_scrub_reaches_inside_strings_keys_and_numbers() -> None:
    report = {
        "errors": {"SN123456_116180400144": "no answer from inverter.lan:502"},
        "title": "Fronius Symo (SN123456)",
        "sfdi": 116180400144,
        "addresses": ["10.1.2.3 refused", "fe80::1 unreachable", "[2001:db8::7]:502 reset"],
        "plain": "12:30:00 at 4.5 kW, version 1.2.3",
    }
    out = scrub(report, ["SN123456", "116180400144", "inverter.lan", "1"])
    assert out["errors"] == {f"{REDACTED}_{REDACTED}": f"no answer from {REDACTED}:502"}
    assert out["title"] == f"Fronius Symo ({REDACTED})"
    assert out["sfdi"] == REDACTED
    assert all(a.startswith(REDACTED) for a in out["addresses"]), out["addresses"]
    assert out["plain"] == "12:30:00 at 4.5 kW, version 1.2.3"  # times and versions stay
