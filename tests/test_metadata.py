"""Offline stand-ins for hassfest and the HACS action: manifest, hacs.json, translations."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from awesomeversion import AwesomeVersion
from packaging.requirements import Requirement

from custom_components.dynamic_export import binary_sensor, number, site_entities, switch
from custom_components.dynamic_export.subentries.csip import entities as csip_entities
from custom_components.dynamic_export.subentries.devices import entities as device_entities

ROOT = Path(__file__).parent.parent
COMPONENT = ROOT / "custom_components" / "dynamic_export"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_manifest_has_what_hassfest_and_hacs_require() -> None:
    """Required keys, domain and name first then sorted, a valid version."""
    manifest = _load(COMPONENT / "manifest.json")
    for key in (
        "domain",
        "name",
        "codeowners",
        "documentation",
        "issue_tracker",
        "version",
        "iot_class",
        "config_flow",
    ):
        assert key in manifest, key
    assert manifest["domain"] == COMPONENT.name
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert AwesomeVersion(manifest["version"]).valid
    assert manifest["documentation"].startswith("https://")


def test_manifest_requirements_are_installed_for_the_tests() -> None:
    """Every library the manifest asks for is in this test venv, in the manifest's range.

    Home Assistant installs the manifest's requirements; the test venvs get theirs from
    requirements_test.txt. One missing there would pass every import-free test and fail CI.
    """
    manifest = _load(COMPONENT / "manifest.json")
    pinned = (ROOT / "requirements_test.txt").read_text(encoding="utf-8")
    for line in manifest["requirements"]:
        requirement = Requirement(line)
        assert f"{requirement.name}==" in pinned, f"{requirement.name} not in requirements_test.txt"
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed), (requirement, installed)


def test_hacs_json_uses_known_keys() -> None:
    """hacs.json rejects unknown keys; the minimum HA version is our floor."""
    hacs = _load(ROOT / "hacs.json")
    allowed = {
        "name",
        "content_in_root",
        "country",
        "filename",
        "hacs",
        "hide_default_branch",
        "homeassistant",
        "persistent_directory",
        "render_readme",
        "zip_release",
    }
    assert set(hacs) <= allowed
    assert hacs["homeassistant"] == "2025.4.0"
    assert (COMPONENT / "brand" / "icon.png").is_file()


def _translation_keys(module: object, platform: str) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for value in vars(module).values():
        for description in value if isinstance(value, tuple) else ():
            key = getattr(description, "translation_key", None) or getattr(description, "key", None)
            if key:
                keys.add((platform, key))
    return keys


def test_every_entity_name_and_state_is_translated() -> None:
    """Entity descriptions and hand-written entities all have an English name."""
    entity = _load(COMPONENT / "translations" / "en.json")["entity"]
    described = {
        key
        for module in (site_entities, device_entities, csip_entities)
        for key in _translation_keys(module, "sensor")
    }
    assert len(described) >= 27  # every sensor description was found
    hand_written = {
        ("binary_sensor", "fail_safe"),
        ("binary_sensor", "connectivity"),
        ("switch", "control"),
        ("switch", "limiter_enabled"),
        *(
            ("number", f"fixed_{k}")
            for k in ("export_limit", "generation_limit", "import_limit", "load_limit")
        ),
    }
    for platform, key in described | hand_written:
        assert "name" in entity[platform][key], (platform, key)
    for description in site_entities.SITE_SENSORS + device_entities.INVERTER_SENSORS:
        for option in description.options or ():
            assert option in entity["sensor"][description.key]["state"], option
    assert binary_sensor.PARALLEL_UPDATES == 0
    assert number.PARALLEL_UPDATES == switch.PARALLEL_UPDATES == 1


def test_icons_refer_to_translated_entities() -> None:
    """icons.json only names entities that exist."""
    icons = _load(COMPONENT / "icons.json")["entity"]
    entity = _load(COMPONENT / "translations" / "en.json")["entity"]
    for platform, keys in icons.items():
        for key in keys:
            assert key in entity[platform], (platform, key)
