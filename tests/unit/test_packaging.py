"""The distribution installs one top-level name, `dianabot`, and old stored topics still resolve."""

from __future__ import annotations

import tomllib
from pathlib import Path

from dianabot.adapters.eventstore.topics import legacy_topic
from dianabot.domain.player import Player
from eventsourcing.utils import resolve_topic

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "application", "projections", "adapters", "content")


def test_every_package_folder_is_installed_under_dianabot() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = {"dianabot"} | {
        "dianabot." + ".".join(init.parent.relative_to(ROOT).parts)
        for layer in LAYERS
        for init in (ROOT / layer).rglob("__init__.py")
    }
    assert on_disk == listed
    assert {f"dianabot.{layer}": layer for layer in LAYERS}.items() <= setuptools[
        "package-dir"
    ].items()


def test_topics_stored_before_the_namespace_resolve_to_the_same_classes() -> None:
    topic = "domain.player:Player.PointsAwarded"
    assert legacy_topic("dianabot.domain.player:Player.PointsAwarded") == topic
    assert resolve_topic(topic) is Player.PointsAwarded
    assert resolve_topic("domain.player:Player") is Player
