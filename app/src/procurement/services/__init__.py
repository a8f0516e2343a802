"""Business rules of procurement, one module per domain.

Views hand these modules an authenticated actor and validated data; they
decide whether the action is allowed, perform it in one transaction, write
the audit trail, and only then invalidate the caches the change affects
(after commit, so a concurrent reader can never cache the old state under
the new version).
"""
