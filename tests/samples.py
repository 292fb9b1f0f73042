"""Small story files shared by tests: a four-fragment story, its next version without 'b', and
a two-chapter story to walk in loops (story decisions)."""

SMALL_STORY = """
slug: prueba
title: Prueba
version_label: "1"
start: a
max_free_cost: 100
chapters:
  - {number: 1, title: Uno, arc: Libre, vip: false}
  - {number: 2, title: Dos, arc: Diván, vip: true}
clues:
  - {id: llave, name: Llave, description: Una llave.}
fragments:
  - id: a
    chapter: 1
    speaker: Diana
    text: Hola.
    reward: {besitos: 5}
    choices:
      - {id: a_b, label: Ir a B, next: b}
      - {id: a_c, label: Pagar C, next: c, cost: 20}
      - {id: a_v, label: Atajo VIP, next: c, vip_only: true}
  - id: b
    chapter: 1
    speaker: Lucien
    text: B.
    reward: {besitos: 10, clue: llave}
    choices:
      - {id: b_a, label: Volver, next: a}
      - {id: b_c, label: Abrir, next: c, requires_clue: llave}
  - id: c
    chapter: 1
    speaker: Diana
    text: C.
    is_ending: true
    choices:
      - {id: c_d, label: Al Diván, next: d}
      - {id: c_a, label: Otra vez, next: a}
  - id: d
    chapter: 2
    speaker: Diana
    text: D.
    is_ending: true
"""

SMALL_STORY_WITHOUT_B = """
slug: prueba
title: Prueba
version_label: "2"
start: a
chapters:
  - {number: 1, title: Uno, arc: Libre, vip: false}
  - {number: 2, title: Dos, arc: Diván, vip: true}
fragments:
  - id: a
    chapter: 1
    speaker: Diana
    text: Hola otra vez.
    choices:
      - {id: a_c, label: Pagar C, next: c, cost: 20}
  - id: c
    chapter: 1
    speaker: Diana
    text: C.
    is_ending: true
    choices:
      - {id: c_d, label: Al Diván, next: d}
  - id: d
    chapter: 2
    speaker: Diana
    text: D.
    is_ending: true
"""

# Two chapters and a loop back: a walk a_b, b_c, c_a decides in both chapters again and again
# (the story-decision policy pays the first decision of each chapter once).
DECISIONS_STORY = """
slug: decisiones
title: Decisiones
version_label: "1"
start: a
chapters:
  - {number: 1, title: Uno, arc: Libre, vip: false}
  - {number: 2, title: Dos, arc: Libre, vip: false}
fragments:
  - {id: a, chapter: 1, speaker: Diana, text: A., choices: [{id: a_b, label: B, next: b}]}
  - {id: b, chapter: 1, speaker: Diana, text: B., choices: [{id: b_c, label: C, next: c}]}
  - id: c
    chapter: 2
    speaker: Diana
    text: C.
    choices:
      - {id: c_d, label: D, next: d}
      - {id: c_a, label: A, next: a}
  - id: d
    chapter: 2
    speaker: Diana
    text: D.
    is_ending: true
    choices: [{id: d_a, label: Otra vez, next: a}]
"""
