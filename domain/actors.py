"""Who acts: the five API roles, and the system actors of workflows and schedules."""

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    CUSTOMER = "customer"
    DRIVER = "driver"
    VENDOR = "vendor"
    BILLING_ADMIN = "billing_admin"
    PLATFORM_ADMIN = "platform_admin"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.BILLING_ADMIN, Role.PLATFORM_ADMIN, Role.SYSTEM)


SYSTEM = Actor("system", Role.SYSTEM)
