"""The shipped Lovelace dashboard names only entities the development site really has.

The site is built through the same flows a user (and ``scripts/develop``) goes through, so
the entity ids are the ones Home Assistant derives from the names those flows give.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util.yaml import load_yaml

from custom_components.dynamic_export.const import (
    DOMAIN,
)
from custom_components.dynamic_export.sim.server import SimulatedSiteServer

from .development_site import development_site
from .helpers import attributes_of, state_of, wait_for

DASHBOARD = Path(__file__).parents[2] / "dashboards" / "dynamic_export.yaml"

CORE_CARDS = frozenset(
    {
        "entities",
        "entity",
        "gauge",
        "glance",
        "conditional",
        "grid",
        "heading",
        "history-graph",
        "horizontal-stack",
        "markdown",
        "sensor",
        "statistics-graph",
        "tile",
        "vertical-stack",
    }
)
"""Card types of Home Assistant 2025.4's own frontend that the dashboard may use."""

TILE_STATE_CONTENT = frozenset({"state", "last_changed", "last_updated"})
"""What a tile's ``state_content`` may show besides attributes."""

ENTITY_KEYS = ("entity", "entities")
"""Keys under which a card, a row, a badge or a condition names entities."""


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in the dashboard, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


TEMPLATE_ENTITY = re.compile(
    r"""(?:states|state_attr|is_state)\(\s*['"]([a-z_]+\.[a-z0-9_]+)['"]"""
)
"""An entity id a markdown card's template reads."""


def _named_entities(dashboard: Any) -> set[str]:
    """Every entity id the dashboard names: cards, rows, badges, conditions, templates."""
    named: set[str] = set()
    for key, value in _walk(dashboard):
        if key == "content" and isinstance(value, str):
            named.update(TEMPLATE_ENTITY.findall(value))
        if key not in ENTITY_KEYS:
            continue
        for item in value if isinstance(value, list) else [value]:
            entity_id = item.get("entity") if isinstance(item, dict) else item
            if isinstance(entity_id, str):
                named.add(entity_id)
    return named


def _attribute_rows(dashboard: Any) -> set[tuple[str, str]]:
    """(entity id, attribute) of every attribute an entities row or a tile shows."""
    rows: set[tuple[str, str]] = set()
    for key, value in _walk(dashboard):
        if key == "entities" and isinstance(value, list):
            rows.update(
                (row["entity"], row["attribute"])
                for row in value
                if isinstance(row, dict) and row.get("type") == "attribute"
            )
        elif key == "cards" and isinstance(value, list):
            rows.update(
                (card["entity"], shown)
                for card in value
                for shown in card.get("state_content", [])
                if shown not in TILE_STATE_CONTENT
            )
    return rows


def _card_types(dashboard: Any) -> set[str]:
    """The type of every card (rows and conditions have types too: only cards are taken)."""
    types: set[str] = set()
    for key, value in _walk(dashboard):
        if key in ("cards", "card"):
            for card in value if isinstance(value, list) else [value]:
                types.add(card["type"])
    return types


def test_walk_finds_entities_in_every_place() -> None:
    """The walk sees card entities, entity rows, attribute rows and conditions."""
    dashboard = {
        "views": [
            {
                "cards": [
                    {"type": "tile", "entity": "sensor.a", "state_content": ["state", "x"]},
                    {"type": "entities", "entities": ["sensor.b", {"entity": "sensor.c"}]},
                    {"type": "markdown", "content": "{{ states('sensor.f') }} {{ x }}"},
                    {
                        "type": "conditional",
                        "conditions": [{"condition": "state", "entity": "sensor.d"}],
                        "card": {"type": "glance", "entities": [{"entity": "sensor.e"}]},
                    },
                ],
            }
        ]
    }
    assert _named_entities(dashboard) == {f"sensor.{x}" for x in "abcdef"}
    assert _card_types(dashboard) == {"tile", "entities", "conditional", "glance", "markdown"}
    assert _attribute_rows(dashboard) == {("sensor.a", "x")}


async def test_dashboard_names_existing_entities(
    hass: HomeAssistant, sim: SimulatedSiteServer
) -> None:
    """Every entity the dashboard names exists on the development site, and has a value."""
    dashboard = load_yaml(DASHBOARD)
    assert _card_types(dashboard) <= CORE_CARDS

    await development_site(hass, sim)
    await wait_for(
        lambda: state_of(hass, "sensor.home_export_limit") == "1500.0", 5, "the limit in force"
    )
    registry = er.async_get(hass)
    named = _named_entities(dashboard)
    assert len(named) >= 15  # the walk found the dashboard's entities
    missing = sorted(e for e in named if registry.async_get(e) is None)
    assert not missing, f"the dashboard names entities the site does not have: {missing}"
    disabled = sorted(e for e in named if registry.async_get(e).disabled)  # type: ignore[union-attr]
    assert not disabled, f"the dashboard names entities disabled by default: {disabled}"

    # With an override in force, every attribute row shows an attribute the entity has.
    await hass.services.async_call(
        DOMAIN, "set_limits", {"export_limit": 1000, "duration": {"hours": 1}}, blocking=True
    )
    rows = _attribute_rows(dashboard)
    assert ("sensor.home_export_limit", "source") in rows
    assert ("binary_sensor.home_override", "set_by") in rows
    for entity_id, attribute in rows:
        assert attribute in attributes_of(hass, entity_id), (entity_id, attribute)
