"""The in-memory store (`memory://`: tests, throwaway demos): the library's POPO recorders."""

from __future__ import annotations

from dianabot.adapters.eventstore.factory import DianaFactory
from eventsourcing.popo import POPOFactory


class DianaPOPOFactory(DianaFactory, POPOFactory):
    """The library's POPO factory with this package's ports (see `factory`)."""
