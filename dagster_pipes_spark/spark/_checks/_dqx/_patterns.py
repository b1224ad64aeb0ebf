"""Values DQX 0.17 validates against: its regular expressions (Java syntax, for ``RLIKE``; anchored
with ``\\A``/``\\z`` so a trailing newline fails) and the ISO code lists shipped in ``iso/``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_OCTET = r"(25[0-5]|2[0-4]\d|1\d{2}|[1-9]?\d)"
_IPV4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_UNRESERVED = r"[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:{_UNRESERVED}|[:@])"

IPV4_ADDRESS = rf"\A{_IPV4}\z"
IPV4_CIDR_BLOCK = rf"\A{_IPV4}/(3[0-2]|[12]?\d)\z"
EMAIL_ADDRESS = (
    r"\A(?=.{1,254}\z)(?=[^@]{1,64}@)"
    rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*"
    r'|"(?:[\x21\x23-\x5B\x5D-\x7E]|\\[\x09\x20-\x7E])*")'
    r"@(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    rf"|\[(?:{_OCTET}(?:\.{_OCTET}){{3}}|IPv6:[A-Fa-f0-9:]+)\])\z"
)
URL = (
    r"\A[A-Za-z][A-Za-z0-9+.\-]*:"
    rf"(?://(?:(?:{_UNRESERVED}|:)*@)?(?:\[[A-Fa-f0-9:.]+\]|(?:{_UNRESERVED})*)(?::\d*)?(?:/{_PCHAR}*)*"
    rf"|(?:/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?|{_PCHAR}+(?:/{_PCHAR}*)*)?)"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?\z"
)
UUID = r"\A[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\z"
UUID_STRICT = r"\A[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[1-8][0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}\z"
DECIMAL_NUMBER = r"\A[+-]?(?=\.?\d)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\z"
#: national identifiers by country: (pattern name as DQX reports it, pattern)
NATIONAL_IDS = {
    "US": ("SSN_US", r"\A(?!000|666|9\d{2})\d{3}([- ]?)(?!00)\d{2}\1(?!0000)\d{4}\z"),
    "GB": (
        "NINO_GB",
        r"\A(?!(?:BG|GB|KN|NK|NT|TN|ZZ))(?!(?:[DFIQUV]))[A-Z](?![DFIOQUV])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[ABCD]\z",
    ),
    "IN": ("PAN_IN", r"\A[A-Z]{3}[ABCFGHJLPT][A-Z]\d{4}[A-Z]\z"),
}

_ISO = Path(__file__).resolve().parent / "iso"
#: ISO standard -> (the kind of code it names, format -> its code list file)
ISO_STANDARDS = {
    "ISO 3166-1": (
        "country",
        {
            "alpha-2": "iso_3166_1_alpha_2.txt",
            "alpha-3": "iso_3166_1_alpha_3.txt",
            "numeric": "iso_3166_1_numeric.txt",
        },
    ),
    "ISO 4217": ("currency", {"alphabetic": "iso_4217_alphabetic.txt", "numeric": "iso_4217_numeric.txt"}),
    "ISO 639": ("language", {"alpha-2": "iso_639_1_alpha_2.txt", "alpha-3": "iso_639_3_alpha_3.txt"}),
}
SUBDIVISIONS = "iso_3166_2.txt"


@cache
def codes(file: str) -> tuple[str, ...]:
    """The codes of one list, sorted."""
    return tuple(sorted(set((_ISO / file).read_text(encoding="utf-8").split())))


def python_pattern(pattern: str) -> str:
    """A Java pattern for Python's ``re`` (``\\z`` is ``\\Z`` there)."""
    return pattern.replace(r"\z", r"\Z")
