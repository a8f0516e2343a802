"""The one package that talks to PostgreSQL: the engine and transactions in
``core``, one module per domain for reads and row locks.

Reads select only the columns a caller shows and return plain dicts (which
also makes them cacheable); writes go through ORM objects fetched with
``FOR UPDATE`` where a state transition depends on what was read.
"""
