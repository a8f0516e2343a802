"""Purchase requests: draft, submit, cancel, approve or reject."""

from __future__ import annotations

from typing import Any, Dict, Sequence

from procurement.cache import cache
from procurement.data_access import core as store
from procurement.data_access import items as items_data
from procurement.data_access import requests as requests_data
from procurement.errors import ApiError, conflict
from procurement.models import (
    PurchaseRequest,
)
from procurement.services.common import (
    Actor,
    Render,
    cache_key,
    cached,
    found,
    in_state,
    now,
    require_role,
)


def create_request(actor: Actor, data: Dict[str, Any]) -> Dict[str, Any]:
    lines = data["lines"]
    submitted = bool(data.get("submit"))
    created = requests_data.create_request(
        actor["name"],
        data["justification"],
        "submitted" if submitted else "draft",
        now() if submitted else None,
        lines,
    )
    if created is None:
        missing = {line["item_id"] for line in lines} - items_data.existing_item_ids(
            [line["item_id"] for line in lines]
        )
        if missing:
            raise ApiError(
                404, "not_found", "unknown items", {"lines": {"item_id": sorted(missing)}}
            )
        raise conflict("the request names rows that no longer exist", "stale_reference")
    cache.bump("requests")
    return created


def get_request(request_id: int) -> Dict[str, Any]:
    return found(requests_data.get_request(request_id), "purchase request", request_id)


def list_requests(args: Dict[str, Any], render: Render = None) -> Any:
    return cached(
        "order_list",
        ("requests",),
        "requests:" + cache_key(args),
        lambda: requests_data.list_requests(
            args.get("status"),
            args.get("requester"),
            args.get("created_from"),
            args.get("created_to"),
            args["page"],
            args["per_page"],
        ),
        render,
    )


def _transition_request(
    actor: Actor, request_id: int, allowed_from: Sequence[str], action: str, apply
) -> Dict[str, Any]:
    with store.transaction():
        req = found(requests_data.request_for_update(request_id), "purchase request", request_id)
        in_state(req, allowed_from, action, "a request")
        before = req.status
        apply(req)
        store.add_audit(
            actor["name"],
            action,
            "purchase_request",
            request_id,
            status={"from": before, "to": req.status},
        )
    cache.bump("requests")
    return requests_data.get_request(request_id)


def _check_owner(actor: Actor, request_id: int) -> None:
    req = found(requests_data.get_request(request_id), "purchase request", request_id)
    if req["requester"] != actor["name"] and actor["role"] != "admin":
        raise ApiError(403, "forbidden", "only the requester may do this")


def submit_request(actor: Actor, request_id: int) -> Dict[str, Any]:
    _check_owner(actor, request_id)

    def apply(req: PurchaseRequest) -> None:
        req.status = "submitted"
        req.submitted_at = now()

    return _transition_request(actor, request_id, ("draft",), "submit", apply)


def cancel_request(actor: Actor, request_id: int) -> Dict[str, Any]:
    _check_owner(actor, request_id)

    def apply(req: PurchaseRequest) -> None:
        req.status = "cancelled"
        req.decided_at = now()
        req.decided_by = actor["name"]

    return _transition_request(actor, request_id, ("draft", "submitted"), "cancel", apply)


def decide_request(actor: Actor, request_id: int, approve: bool, comment: str) -> Dict[str, Any]:
    """Approve or reject; the row lock makes concurrent decisions serialise, one wins."""
    require_role(actor, "approver", "admin")
    req = found(requests_data.get_request(request_id), "purchase request", request_id)
    if req["requester"] == actor["name"]:
        raise ApiError(403, "forbidden", "nobody may decide on their own request")

    def apply(r: PurchaseRequest) -> None:
        r.status = "approved" if approve else "rejected"
        r.decided_at = now()
        r.decided_by = actor["name"]
        r.decision_comment = comment

    return _transition_request(
        actor, request_id, ("submitted",), "approve" if approve else "reject", apply
    )
