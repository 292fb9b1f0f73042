"""Domain model of Diana: aggregates, events, value objects and pure rules. No I/O here."""
