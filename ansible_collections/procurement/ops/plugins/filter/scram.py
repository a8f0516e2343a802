"""SCRAM-SHA-256 verifiers computed on the controller.

PostgreSQL logs DDL statements (log_statement = ddl), and ALTER ROLE ...
PASSWORD is DDL: a plain-text password sent to the server would be written
to its log. Sending the verifier instead keeps the password out of the log,
and the postgresql_user module compares a given verifier with the stored one
directly. The salt is derived from a seed (the role and host names), so the
same password gives the same verifier on every run: idempotent, and a new
password still changes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

ITERATIONS = 4096


def scram_sha256_verifier(password, seed, iterations=ITERATIONS):
    """Return PostgreSQL's SCRAM-SHA-256$iter:salt$StoredKey:ServerKey for password."""
    if not isinstance(password, str) or not password:
        raise ValueError("scram_sha256_verifier needs a non-empty password string")
    salt = hashlib.sha256(("procurement-scram:" + str(seed)).encode()).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw):
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${int(iterations)}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class FilterModule:
    """Filters of the postgresql role."""

    def filters(self):
        return {"scram_verifier": scram_sha256_verifier}
