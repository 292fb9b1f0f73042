"""Personal data in events: a small value type the store encrypts with its subject's key.

Why a type: the domain says *which* values are personal (a display name, a language) and whose
(`subject`, the pseudonym `tg:user:<id>`), and nothing more. The event store
(`adapters/eventstore/personal.py`) stores a `PersonalText` encrypted with a key of that
subject and reads it back; once the subject's key is destroyed (`dianabot admin forget`), the
same stored bytes read as an erased value (`text is None`). So forgetting a user never edits
an event, and replaying history never fails on it: code that shows a `PersonalText` shows
`shown()` (the text, or `ERASED`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ERASED = "(borrado)"
"""How an erased value reads in texts for people (JSON says `null` and `erased: true`)."""


def subject_of(telegram_id: int) -> str:
    """The pseudonym a user's personal data is keyed by (the same as an event's actor)."""
    return f"tg:user:{telegram_id}"


@dataclass(frozen=True, slots=True)
class PersonalText:
    """A personal value of one subject; `text` is None once erased (the key destroyed).

    `legacy`: read from an event stored in plain text before personal data was encrypted
    (through an upcaster). Those bytes cannot be rewritten, so the store masks them once the
    subject is forgotten. Not stored, not compared.
    """

    subject: str
    text: str | None
    legacy: bool = field(default=False, compare=False)

    @property
    def erased(self) -> bool:
        return self.text is None

    def shown(self) -> str:
        """The text for people: the value, or `ERASED`."""
        return ERASED if self.text is None else self.text

    def erased_copy(self) -> PersonalText:
        return PersonalText(self.subject, None)

    def __repr__(self) -> str:  # never the value itself in logs or reprs
        return f"PersonalText({self.subject!r}, {'erased' if self.text is None else '…'})"


def personal(telegram_id: int, text: str) -> PersonalText:
    return PersonalText(subject_of(telegram_id), text)


def erased(telegram_id: int) -> PersonalText:
    return PersonalText(subject_of(telegram_id), None)
