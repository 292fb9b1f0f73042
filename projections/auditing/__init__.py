"""The auditor's reading tools (`dianabot audit history|balance|leaderboard|explain|badges`).

Everything here reads the event log through the read side's ports, never today's read-model
rows (only `explain` compares its totals with them): a user's trail across their aggregates
(`trail`), state at a past moment by replaying only what was committed by then (`asof`), every
besito, level and badge traced to its event and rule (`explain`), and badges as Open Badges 3.0
credentials (`openbadges`).
"""
