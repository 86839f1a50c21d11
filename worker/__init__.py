"""athena-sync: keep a Postgres copy of an athenahealth practice's scheduling data."""

__version__ = "0.1.0"
