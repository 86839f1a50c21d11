"""Sync orchestration: runs, the upsert helper, deletion marking, dead letters."""
