"""dianabot: the event-sourced CQRS backend of Diana, a gamified, story-driven Telegram bot.

The layers live in folders at the repository root (domain/, application/, projections/,
adapters/, content/) and are installed and imported as subpackages of this one name
(`dianabot.domain`, `dianabot.application`, ...), so the distribution owns one top-level name.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dianabot")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
