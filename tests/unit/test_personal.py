"""The personal data keyring: AES-GCM per subject, erased when the key is gone, never raising."""

from __future__ import annotations

from dianabot.adapters.eventstore.personal import CURRENT_KEY_SECONDS, Keyring, MemoryKeys
from dianabot.domain.personal import ERASED, PersonalText


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_value_round_trips_encrypted_and_an_erased_one_needs_no_key() -> None:
    ring = Keyring(MemoryKeys())
    sealed = ring.encrypt(PersonalText("tg:user:1", "Ana"))
    assert "Ana" not in str(sealed) and set(sealed) == {"s", "k", "n", "c"}
    assert ring.decrypt(sealed) == PersonalText("tg:user:1", "Ana")
    assert ring.encrypt(PersonalText("tg:user:1", None)) == {"s": "tg:user:1"}
    assert ring.decrypt({"s": "tg:user:1"}).shown() == ERASED
    assert ring.table.key_ids("tg:user:2") == []  # no key made for what was never encrypted


def test_tampered_or_moved_ciphertext_reads_as_erased() -> None:
    ring = Keyring(MemoryKeys())
    sealed = ring.encrypt(PersonalText("tg:user:1", "Ana"))
    ring.encrypt(PersonalText("tg:user:2", "Luis"))
    flipped = dict(sealed, c=sealed["c"][:-4] + ("AAAA" if sealed["c"][-4:] != "AAAA" else "BBBB"))
    assert ring.decrypt(flipped).erased
    assert ring.decrypt(dict(sealed, s="tg:user:2")).erased  # bound to its subject
    assert ring.decrypt(dict(sealed, n="not base64!")).erased


def test_another_process_forgetting_is_seen_within_the_cache_time() -> None:
    table, clock = MemoryKeys(), Clock()
    here, there = Keyring(table, ttl=10, clock=clock), Keyring(table, ttl=10, clock=clock)
    sealed = here.encrypt(PersonalText("tg:user:1", "Ana"))
    assert here.decrypt(sealed).text == "Ana"
    assert there.forget("tg:user:1") == 1
    assert there.decrypt(sealed).erased  # at once where it was forgotten
    clock.now = CURRENT_KEY_SECONDS  # comes back a second later: a new key
    soon = here.encrypt(PersonalText("tg:user:1", "Ana"))
    assert soon["k"] != sealed["k"]
    assert here.decrypt(sealed).text == "Ana"  # a key read here lives on for the cache time
    clock.now = 11
    assert here.decrypt(sealed).erased  # elsewhere once the cached key expires
    assert here.forgotten("tg:user:1")
    assert here.decrypt(soon).text == "Ana"


def test_values_never_show_their_text_in_reprs() -> None:
    assert "Ana" not in repr(PersonalText("tg:user:1", "Ana"))


class Counting(MemoryKeys):
    def __init__(self) -> None:
        super().__init__()
        self.queries = 0

    def key(self, key_id: str) -> bytes | None:
        self.queries += 1
        return super().key(key_id)

    def some_keys(self, limit: int) -> list[tuple[str, bytes]]:
        self.queries += 1
        return super().some_keys(limit)


def test_a_reader_meeting_many_users_reads_their_keys_in_one_query() -> None:
    table = Counting()
    writer = Keyring(table)
    sealed = [writer.encrypt(PersonalText(f"tg:user:{i}", f"user {i}")) for i in range(50)]
    table.queries = 0
    reader = Keyring(table)
    assert [reader.decrypt(s).text for s in sealed] == [f"user {i}" for i in range(50)]
    assert table.queries == 1
