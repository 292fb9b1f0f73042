"""Use cases: eventsourcing Applications, typed commands and results, policies, the coordinator."""
