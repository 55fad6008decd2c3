"""Operator actions shared by the API routers and the admin console, so both take one path:
the service's rules are checked first (a refused action is a 4xx and nothing is sent), then
the entity's workflow is signalled through ``api.workflow_calls``. One module per domain."""

from domain.actors import Actor, Role
from domain.errors import PermissionDenied

ADMIN_ROLES = (Role.PLATFORM_ADMIN, Role.BILLING_ADMIN)
PLATFORM_ADMIN_ONLY = (Role.PLATFORM_ADMIN,)


def allow(actor: Actor, roles: tuple[Role, ...]) -> None:
    """Refuse ``actor`` unless it has one of ``roles`` (the message ``require_roles`` gives)."""
    if actor.role not in roles:
        raise PermissionDenied(
            f"Role {actor.role.value!r} may not do this; needs one of "
            + ", ".join(sorted(r.value for r in roles))
        )
