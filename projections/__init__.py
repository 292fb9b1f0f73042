"""The read side: read models projected from the notification log, rebuilt and reconciled by replay.

Start at `projections.service.Projections` (what `adapters.bootstrap` builds).
"""
