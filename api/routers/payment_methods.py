"""Customers' payment methods: add a card tokenized by Stripe, read and list them, choose the
default, record verification, remove. A card number never reaches Tollgate: the body takes
only a Stripe token (``pm_...`` or ``tok_...``), a number sent anyway is refused without being
echoed, and no other field is accepted. Customers see and change their own methods; admins
any."""

import uuid
from datetime import datetime
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncSession

from api.customers import acting_for, check_customer
from api.deps import Admin, CurrentActor, Session
from api.fields import Party
from api.pagination import Page, PageParams, PageQuery, paginate, uuid_cursor
from api.routers.subscriptions import retry_dunning_after_commit
from domain.actors import Actor
from domain.errors import NotFound
from domain.payments import PaymentMethodStatus, PaymentMethodType, VerificationStatus
from integrations import stripe_customers
from models.payments import PaymentMethod
from services import payment_methods, subscriptions

router = APIRouter(prefix="/payment-methods", tags=["payment methods"])


CustomerId = Annotated[str, Path(min_length=1, max_length=200)]


def stripe_client(request: Request) -> stripe.StripeClient:
    client: stripe.StripeClient = request.app.state.stripe
    return client


Stripe = Annotated[stripe.StripeClient, Depends(stripe_client)]

Token = Annotated[
    str,
    Field(
        max_length=255,
        pattern=r"^(pm|tok)_[A-Za-z0-9_]+$",
        description="A Stripe PaymentMethod (pm_...) or card token (tok_...), never a number",
    ),
]


class PaymentMethodIn(BaseModel):
    # No field may carry card data: anything not named here is refused.
    model_config = ConfigDict(extra="forbid")

    customer_id: Party | None = Field(None, description="Defaults to the calling customer")
    token: Token
    set_default: bool = False

    @field_validator("token", mode="before")
    @classmethod
    def not_a_card_number(cls, value: Any) -> Any:
        if isinstance(value, int | str) and str(value).replace(" ", "").replace("-", "").isdigit():
            # A custom error: its message is fixed text, so the number is never echoed.
            raise PydanticCustomError(
                "card_number_refused",
                "card numbers are never accepted: tokenize the card with Stripe and send its"
                " pm_ or tok_ id",
            )
        return value


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: VerificationStatus


class PaymentMethodOut(BaseModel):
    id: uuid.UUID
    object: str = "payment_method"
    customer_id: str
    stripe_payment_method_id: str
    type: PaymentMethodType
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    country: str | None
    status: PaymentMethodStatus
    verification_status: VerificationStatus
    is_default: bool
    removed_at: datetime | None
    created_at: datetime
    updated_at: datetime


def method_out(method: PaymentMethod) -> PaymentMethodOut:
    return PaymentMethodOut(
        id=method.id,
        customer_id=method.customer_id,
        stripe_payment_method_id=method.stripe_payment_method_id,
        type=PaymentMethodType(method.type),
        brand=method.brand,
        last4=method.last4,
        exp_month=method.exp_month,
        exp_year=method.exp_year,
        country=method.country,
        status=PaymentMethodStatus(method.status),
        verification_status=VerificationStatus(method.verification_status),
        is_default=method.is_default,
        removed_at=method.removed_at,
        created_at=method.created_at,
        updated_at=method.updated_at,
    )


async def _owned(session: AsyncSession, method_id: uuid.UUID, actor: Actor) -> PaymentMethod:
    method = await payment_methods.get(session, method_id)
    check_customer(actor, method.customer_id)
    return method


@router.post("", status_code=201)
async def add_payment_method(
    body: PaymentMethodIn, request: Request, session: Session, actor: CurrentActor, client: Stripe
) -> PaymentMethodOut:
    """Attach the tokenized card to the customer at Stripe and store its display details.
    The customer's first active method becomes the default, as does one sent with
    ``set_default``. The customer's subscriptions waiting on a failed payment are charged
    again at once."""
    customer_id = acting_for(actor, body.customer_id)
    if body.token.startswith("pm_"):
        # Refused before Stripe: attaching again could move a removed card back to Stripe's
        # customer while Tollgate keeps it removed.
        await payment_methods.check_not_added(session, body.token)
    stripe_customer_id = await payment_methods.stripe_customer(session, customer_id)
    if stripe_customer_id is None:
        stripe_customer_id = await stripe_customers.ensure_customer(client, customer_id)
    card = await stripe_customers.attach_payment_method(client, stripe_customer_id, body.token)
    method = await payment_methods.add(
        session,
        customer_id=customer_id,
        stripe_customer_id=stripe_customer_id,
        card=card,
        make_default=body.set_default,
        actor=actor,
    )
    await _retry_dunning(request, session, customer_id, actor)
    return method_out(method)


async def _retry_dunning(
    request: Request, session: AsyncSession, customer_id: str, actor: Actor
) -> None:
    """A new card may pay what the old one could not: ``retry_payment`` to each of the
    customer's subscriptions in dunning, once committed."""
    waiting = await subscriptions.in_dunning(session, customer_id)
    retry_dunning_after_commit(request, waiting, "new payment method", actor)


@router.get("/customer/{customer_id}")
async def list_for_customer(
    customer_id: CustomerId,
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
) -> Page[PaymentMethodOut]:
    """Every method of the customer, removed ones included, newest first."""
    return await _list(session, actor, customer_id, params)


@router.get("/customer/{customer_id}/active")
async def list_active(
    customer_id: CustomerId,
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
) -> Page[PaymentMethodOut]:
    """The methods the customer can pay with, newest first."""
    return await _list(session, actor, customer_id, params, active_only=True)


@router.get("/customer/{customer_id}/type/{method_type}")
async def list_by_type(
    customer_id: CustomerId,
    method_type: PaymentMethodType,
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
) -> Page[PaymentMethodOut]:
    """The customer's methods of one type, removed ones included, newest first."""
    return await _list(session, actor, customer_id, params, method_type=method_type)


async def _list(
    session: AsyncSession,
    actor: Actor,
    customer_id: str,
    params: PageParams,
    *,
    active_only: bool = False,
    method_type: PaymentMethodType | None = None,
) -> Page[PaymentMethodOut]:
    check_customer(actor, customer_id)
    rows = await payment_methods.list_for_customer(
        session,
        customer_id,
        active_only=active_only,
        type=method_type,
        limit=params.limit,
        starting_after=uuid_cursor(params.starting_after),
    )
    return paginate(rows, params.limit, method_out, lambda item: item.id)


@router.get("/customer/{customer_id}/default")
async def get_default(
    customer_id: CustomerId, session: Session, actor: CurrentActor
) -> PaymentMethodOut:
    check_customer(actor, customer_id)
    method = await payment_methods.default_for(session, customer_id)
    if method is None:
        raise NotFound(f"customer {customer_id} has no default payment method")
    return method_out(method)


@router.get("/{method_id}")
async def get_payment_method(
    method_id: uuid.UUID, session: Session, actor: CurrentActor
) -> PaymentMethodOut:
    return method_out(await _owned(session, method_id, actor))


@router.put("/{method_id}/set-default")
async def set_default(
    method_id: uuid.UUID, request: Request, session: Session, actor: CurrentActor
) -> PaymentMethodOut:
    """The previous default stops being it; a removed method is a 409. A new default
    charges the customer's subscriptions in dunning again at once."""
    was_default = (await _owned(session, method_id, actor)).is_default
    method = await payment_methods.set_default(session, method_id, actor=actor)
    if not was_default:
        await _retry_dunning(request, session, method.customer_id, actor)
    return method_out(method)


@router.put("/{method_id}/verification-status")
async def set_verification_status(
    method_id: uuid.UUID, body: VerificationIn, session: Session, actor: Admin
) -> PaymentMethodOut:
    """Record the outcome of a verification (KYC, a micro-deposit check); 409 if removed."""
    method = await payment_methods.set_verification_status(
        session, method_id, body.status, actor=actor
    )
    return method_out(method)


@router.delete("/{method_id}")
async def remove_payment_method(
    method_id: uuid.UUID, session: Session, actor: CurrentActor, client: Stripe
) -> PaymentMethodOut:
    """Mark the method removed and detach the card at Stripe; if Stripe cannot be reached
    nothing changes (503). A removed default leaves the customer without one. Removing a
    removed method answers it as it is."""
    method = await _owned(session, method_id, actor)
    if method.status == PaymentMethodStatus.REMOVED.value:
        return method_out(method)
    method = await payment_methods.remove(session, method_id, actor=actor)
    # After the row change, so a failed detach rolls it back with the request.
    await stripe_customers.detach_payment_method(client, method.stripe_payment_method_id)
    return method_out(method)
