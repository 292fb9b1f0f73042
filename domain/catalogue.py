"""The initial badge catalogue (spec section 2). Admins can define more."""

from __future__ import annotations

from dianabot.domain.badge import BadgeSpec

CHAPTERS = range(1, 7)

INITIAL_BADGES: tuple[BadgeSpec, ...] = (
    BadgeSpec(
        "primeros-besitos",
        "Primeros besitos",
        "Ganaste tus primeros besitos.",
        "💋",
        {"kind": "first_points"},
    ),
    BadgeSpec(
        "besitos-100",
        "Cien besitos",
        "100 besitos ganados en total.",
        "💯",
        {"kind": "lifetime_besitos", "threshold": 100},
    ),
    BadgeSpec(
        "besitos-500",
        "Quinientos besitos",
        "500 besitos ganados en total.",
        "🔥",
        {"kind": "lifetime_besitos", "threshold": 500},
    ),
    BadgeSpec(
        "besitos-1000",
        "Mil besitos",
        "1.000 besitos ganados en total.",
        "👑",
        {"kind": "lifetime_besitos", "threshold": 1000},
    ),
    BadgeSpec(
        "racha-3",
        "Racha de 3",
        "Tres días seguidos visitando a Diana.",
        "🌙",
        {"kind": "checkin_streak", "days": 3},
    ),
    BadgeSpec(
        "racha-7",
        "Racha de 7",
        "Una semana entera sin faltar.",
        "⭐",
        {"kind": "checkin_streak", "days": 7},
    ),
    BadgeSpec(
        "racha-30",
        "Racha de 30",
        "Un mes de fidelidad absoluta.",
        "🌟",
        {"kind": "checkin_streak", "days": 30},
    ),
    BadgeSpec(
        "primera-decision",
        "Primera decisión",
        "Tomaste tu primera decisión en la historia.",
        "🗝️",
        {"kind": "first_decision"},
    ),
    *(
        BadgeSpec(
            f"capitulo-{n}",
            f"Capítulo {n}",
            f"Completaste el capítulo {n}.",
            "📖",
            {"kind": "chapter_completed", "chapter": n},
        )
        for n in CHAPTERS
    ),
    BadgeSpec(
        "reacciones-10",
        "Diez reacciones",
        "Reaccionaste a 10 publicaciones.",
        "❤️",
        {"kind": "reactions", "count": 10},
    ),
    BadgeSpec("el-divan", "El Diván", "Miembro VIP de El Diván.", "🛋️", {"kind": "vip_active"}),
)
