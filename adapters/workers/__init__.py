"""The workers: the projectors, the policies and the time-driven jobs of one store, in one
object (`Workers`) that `dianabot workers` runs, and the bot runs in its own process."""

from dianabot.adapters.workers.service import LEADER, STANDBY, STOPPED, Workers, default_jobs

__all__ = ["LEADER", "STANDBY", "STOPPED", "Workers", "default_jobs"]
