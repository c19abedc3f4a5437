"""Every setting and every command is documented."""

import argparse
from pathlib import Path

from sandhaven.cli.main import build_parser
from sandhaven.config.settings import SETTINGS, settings_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_settings_page_is_current_and_lists_every_setting():
    page = (DOCS / "administering" / "settings.md").read_text()
    assert page == settings_markdown(), "run `make docs` to regenerate the settings page"
    for setting in SETTINGS:
        assert f"`{setting.env}`" in page and f"`{setting.flag}`" in page


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                nested = _commands(sub, path)
                found += nested or [path]
    return found


def test_every_command_is_documented():
    page = (DOCS / "administering" / "cli.md").read_text()
    commands = _commands(build_parser())
    assert "serve" in commands and "user add" in commands
    for command in commands:
        assert f"`sandhaven {command}" in page, command
