"""Whose money a request touches: admins act for any customer, a customer only for itself,
other roles (drivers, vendors) for nobody."""

from domain.actors import Actor, Role
from domain.errors import PermissionDenied, ValidationError

ADMIN_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.BILLING_ADMIN})


def check_customer(actor: Actor, customer_id: str) -> None:
    if actor.role in ADMIN_ROLES:
        return
    if actor.role is not Role.CUSTOMER or actor.id != customer_id:
        raise PermissionDenied("customers may only see and act on their own payments and methods")


def acting_for(actor: Actor, customer_id: str | None) -> str:
    """The customer a request is for: the caller when a customer, else ``customer_id``,
    which an admin must give."""
    if customer_id is None:
        if actor.role in ADMIN_ROLES:
            raise ValidationError("customer_id is required when an admin acts", param="customer_id")
        customer_id = actor.id
    check_customer(actor, customer_id)
    return customer_id
