"""A user's badges as Open Badges 3.0 achievement credentials (`OpenBadgeCredential`).

One credential per badge the user holds, from the event that awarded it (or re-awarded it):
the achievement is the badge as defined in the log when it was awarded (name, description,
criteria in words), the subject is the player by pseudonym (`urn:uuid:` of the player's
stream id, never the Telegram id or a name), and `evidence` lists the award event itself and
each event its own evidence names, with their positions in the log. The credentials are
unsigned (no `proof`): an issuer that wants verifiable credentials signs them with its own key.
"""

from __future__ import annotations

from typing import Any

from dianabot.domain.ids import badge_award_id, badge_id, player_id
from dianabot.projections.auditing.explain import BadgeLine, Explanation

CONTEXT = [
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
]
DEFAULT_ISSUER = "urn:dianabot:issuer"
ISSUER_NAME = "Diana"


def credentials(
    explanation: Explanation, *, issuer: str = DEFAULT_ISSUER, issuer_name: str = ISSUER_NAME
) -> list[dict[str, Any]]:
    """One credential per badge held at the end of the explained trail, oldest award first."""
    latest: dict[str, BadgeLine] = {}
    for line in explanation.badges:
        latest[line.slug] = line
    held = [line for slug, line in latest.items() if line.event != "BadgeRevoked"]
    held.sort(key=lambda line: line.position)
    return [_credential(explanation.telegram_id, line, issuer, issuer_name) for line in held]


def _credential(telegram_id: int, line: BadgeLine, issuer: str, issuer_name: str) -> dict[str, Any]:
    award = badge_award_id(line.slug, telegram_id)
    evidence: list[dict[str, Any]] = [
        {
            "id": f"urn:dianabot:event:{award}:{line.position}",
            "type": ["Evidence"],
            "name": f"{line.event} at position {line.position}",
            "description": f"The event that awarded the badge: {line.cause.text}",
            "narrative": f"causation {line.cause.causation}, actor {line.cause.actor}",
        }
    ]
    for item in line.evidence:
        where = f" at position {item.position}" if item.position is not None else ""
        evidence.append(
            {
                "id": f"urn:dianabot:{item.reference}",
                "type": ["Evidence"],
                "name": f"{item.event or 'event'}{where}",
                "description": f"An event that satisfied the criteria: {item.reference}",
            }
        )
    valid_from = line.at.isoformat() if line.at is not None else None
    credential: dict[str, Any] = {
        "@context": CONTEXT,
        "id": f"urn:uuid:{award}",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "issuer": {"id": issuer, "type": ["Profile"], "name": issuer_name},
        "name": line.name or line.slug,
        "credentialSubject": {
            "id": f"urn:uuid:{player_id(telegram_id)}",
            "type": ["AchievementSubject"],
            "achievement": {
                "id": f"urn:uuid:{badge_id(line.slug)}",
                "type": ["Achievement"],
                "achievementType": "Badge",
                "name": line.name or line.slug,
                "description": line.description or line.name or line.slug,
                "criteria": {"narrative": line.rule},
                "tag": [line.slug],
            },
        },
        "evidence": evidence,
    }
    if valid_from is not None:
        credential["validFrom"] = valid_from
    return credential
