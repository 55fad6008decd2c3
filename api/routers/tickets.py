"""Tickets: issue, read, QR images, verify (online and offline uploads), cancel, keys."""

import logging
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import (
    CurrentActor,
    Session,
    after_commit,
    get_settings,
    in_background,
    require_roles,
)
from api.pagination import Page, PageQuery, paginate, uuid_cursor
from domain.actors import Actor, Role
from domain.errors import NotFound, PermissionDenied, ProviderError
from domain.tickets import qr
from domain.tickets.lifecycle import TicketStatus
from domain.tickets.signing import KeyRing
from models.tickets import Ticket
from services import anchoring, tickets
from settings import Settings
from workflows.tickets import TicketWorkflow
from workflows.types import TicketInput, TicketStatusChanged

log = logging.getLogger(__name__)
router = APIRouter(prefix="/tickets", tags=["tickets"])

Id = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Issuer = Annotated[Actor, Depends(require_roles(Role.PLATFORM_ADMIN))]
Scanner = Annotated[Actor, Depends(require_roles(Role.DRIVER, Role.PLATFORM_ADMIN))]


def keyring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.keyring()
    return ring


Ring = Annotated[KeyRing, Depends(keyring)]


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    booking_id: Id
    user_id: str = Field(min_length=1, max_length=200, description="The passenger")
    driver_id: Id
    trip: dict[str, Any] = Field(default_factory=dict, description="Pickup, drop-off, times")
    valid_from: AwareDatetime
    valid_until: AwareDatetime


class TicketLinks(BaseModel):
    self: str
    qr_png: str
    qr_svg: str
    proof: str


class TicketOut(BaseModel):
    id: uuid.UUID
    object: str = "ticket"
    booking_id: str
    user_id: str
    driver_id: str
    trip: dict[str, Any]
    valid_from: datetime
    valid_until: datetime
    status: TicketStatus
    status_changed_at: datetime
    cancel_reason: str | None
    key_id: str
    qr_payload: str
    created_at: datetime
    links: TicketLinks


def ticket_out(ticket: Ticket) -> TicketOut:
    base = f"/api/v1/tickets/{ticket.id}"
    return TicketOut(
        id=ticket.id,
        booking_id=ticket.booking_id,
        user_id=ticket.user_id,
        driver_id=ticket.driver_id,
        trip=ticket.trip,
        valid_from=ticket.valid_from,
        valid_until=ticket.valid_until,
        status=TicketStatus(ticket.status),
        status_changed_at=ticket.status_changed_at,
        cancel_reason=ticket.cancel_reason,
        key_id=ticket.key_id,
        qr_payload=ticket.payload,
        created_at=ticket.created_at,
        links=TicketLinks(
            self=base,
            qr_png=f"{base}/qr?format=png",
            qr_svg=f"{base}/qr?format=svg",
            proof=f"{base}/proof",
        ),
    )


async def _temporal(request: Request) -> Client:
    client: Client = await request.app.state.temporal.get()
    return client


async def ensure_workflow(request: Request, ticket: Ticket, task_queue: str) -> None:
    """Start ``ticket-{id}``; a second start finds the first (the id is the idempotency)."""
    try:
        await (await _temporal(request)).start_workflow(
            TicketWorkflow.run,
            TicketInput(
                ticket_id=ticket.id,
                booking_id=ticket.booking_id,
                driver_id=ticket.driver_id,
                valid_until=ticket.valid_until,
            ),
            id=f"ticket-{ticket.id}",
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran and finished: the ticket is no longer ACTIVE


async def notify(request: Request, ticket_id: uuid.UUID, status: TicketStatus) -> None:
    """Tell the ticket's workflow about a change the API made. Best effort: the row is the
    record, and a workflow that misses this still ends right (its activities re-read it)."""
    try:
        handle: WorkflowHandle[Any, Any] = (await _temporal(request)).get_workflow_handle(
            f"ticket-{ticket_id}"
        )
        await handle.signal(TicketWorkflow.status_changed, TicketStatusChanged(status=status.value))
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            log.warning("could not signal ticket-%s: %s", ticket_id, exc)
    except ProviderError as exc:  # Temporal unreachable: the row stays the record
        log.warning("could not signal ticket-%s: %s", ticket_id, exc)


@router.post("", status_code=201)
async def issue_ticket(
    body: TicketIn,
    request: Request,
    response: Response,
    session: Session,
    actor: Issuer,
    ring: Ring,
    settings: Annotated[Settings, Depends(get_settings)],
) -> TicketOut:
    """Issue the booking's ticket; the same booking again returns the same ticket (200)."""
    issued = await tickets.issue(
        session,
        booking_id=body.booking_id,
        user_id=body.user_id,
        driver_id=body.driver_id,
        trip=body.trip,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        ring=ring,
        actor=actor,
    )
    ticket = issued.ticket
    if not issued.created:
        response.status_code = 200
    if TicketStatus(ticket.status) is TicketStatus.ACTIVE:

        async def start() -> None:
            await ensure_workflow(request, ticket, settings.task_queue)
            if issued.created:
                in_background(request, request.app.state.early_anchoring.tickets_issued())

        after_commit(request, start)
    return ticket_out(ticket)


class PublicKey(BaseModel):
    key_id: str
    public_key: str = Field(description="Compressed secp256k1 public key, hex")
    status: str


class PublicKeys(BaseModel):
    object: str = "list"
    keys: list[PublicKey]


@router.get("/keys")
async def public_keys(ring: Ring) -> PublicKeys:
    """The keys that verify ticket signatures (public, for offline scanners)."""
    return PublicKeys(
        keys=[
            PublicKey(key_id=info.key_id, public_key=info.public_key_hex, status=info.status)
            for info in ring.public_keys()
        ]
    )


class Revocation(BaseModel):
    ticket_id: uuid.UUID
    booking_id: str
    revoked_at: datetime
    reason: str | None


@router.get("/revocations")
async def list_revocations(
    session: Session,
    _: Scanner,
    params: PageQuery,
    since: Annotated[AwareDatetime | None, Query(description="Changes at or after")] = None,
) -> Page[Revocation]:
    rows = await tickets.revocations(
        session,
        since=since,
        limit=params.limit,
        starting_after=uuid_cursor(params.starting_after),
    )

    def view(ticket: Ticket) -> Revocation:
        return Revocation(
            ticket_id=ticket.id,
            booking_id=ticket.booking_id,
            revoked_at=ticket.status_changed_at,
            reason=ticket.cancel_reason,
        )

    return paginate(rows, params.limit, view, lambda item: item.ticket_id)


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class VerifyIn(BaseModel):
    payload: str = Field(min_length=1, max_length=1000, description="The scanned QR text")
    driver_id: Id
    location: Location | None = None


class VerifyOut(BaseModel):
    valid: bool
    reason: str
    ticket_id: uuid.UUID | None
    booking_id: str | None
    user_id: str | None
    status: TicketStatus | None
    flagged: bool = False


def verify_out(result: tickets.Verification) -> VerifyOut:
    ticket = result.ticket
    return VerifyOut(
        valid=result.valid,
        reason=result.reason.value,
        ticket_id=ticket.id if ticket else None,
        booking_id=ticket.booking_id if ticket else None,
        user_id=ticket.user_id if ticket else None,
        status=TicketStatus(ticket.status) if ticket else None,
        flagged=result.flagged,
    )


def _own_driver_id(actor: Actor, driver_id: str) -> None:
    if actor.role is Role.DRIVER and actor.id != driver_id:
        raise PermissionDenied("Drivers verify with their own driver id", param="driver_id")


@router.post("/verify")
async def verify_ticket(
    body: VerifyIn, request: Request, session: Session, actor: Scanner, ring: Ring
) -> VerifyOut:
    """Check a scan; a valid one marks the ticket USED, exactly once. Every attempt is logged."""
    _own_driver_id(actor, body.driver_id)
    result = await tickets.verify(
        session,
        payload=body.payload,
        driver=actor,
        driver_id=body.driver_id,
        location=body.location.model_dump() if body.location else None,
        ring=ring,
    )
    if result.valid and result.ticket is not None:
        ticket_id = result.ticket.id

        async def tell() -> None:
            in_background(request, notify(request, ticket_id, TicketStatus.USED))

        after_commit(request, tell)
    return verify_out(result)


class OfflineScan(BaseModel):
    nonce: str = Field(min_length=8, max_length=100, description="Unique per scan")
    payload: str = Field(min_length=1, max_length=1000)
    driver_id: Id
    scanned_at: AwareDatetime
    location: Location | None = None


class ScansIn(BaseModel):
    scans: list[OfflineScan] = Field(min_length=1, max_length=500)


class ScanOut(BaseModel):
    nonce: str
    accepted: bool
    reason: str
    ticket_id: uuid.UUID | None
    flagged: bool


class ScansOut(BaseModel):
    object: str = "list"
    data: list[ScanOut]


@router.post("/scans")
async def upload_scans(
    body: ScansIn, request: Request, session: Session, actor: Scanner, ring: Ring
) -> ScansOut:
    """Scans made offline, uploaded later; each nonce is recorded once. A ticket scanned
    twice while offline comes back flagged."""
    results = []
    for scan in body.scans:
        _own_driver_id(actor, scan.driver_id)
        upload = await tickets.upload_offline_scan(
            session,
            nonce=scan.nonce,
            payload=scan.payload,
            driver=actor,
            driver_id=scan.driver_id,
            scanned_at=scan.scanned_at,
            location=scan.location.model_dump() if scan.location else None,
            ring=ring,
        )
        if upload.used_now is not None:
            used_id = upload.used_now.id

            async def tell(ticket_id: uuid.UUID = used_id) -> None:
                in_background(request, notify(request, ticket_id, TicketStatus.USED))

            after_commit(request, tell)
        results.append(
            ScanOut(
                nonce=scan.nonce,
                accepted=upload.log.accepted,
                reason=upload.log.reason,
                ticket_id=upload.log.ticket_id,
                flagged=upload.log.flagged,
            )
        )
    return ScansOut(data=results)


@router.get("")
async def list_tickets(
    session: Session,
    actor: CurrentActor,
    params: PageQuery,
    status: TicketStatus | None = None,
    booking_id: str | None = None,
    user_id: str | None = None,
    driver_id: str | None = None,
    created_gte: Annotated[AwareDatetime | None, Query(alias="created[gte]")] = None,
    created_lt: Annotated[AwareDatetime | None, Query(alias="created[lt]")] = None,
) -> Page[TicketOut]:
    """Passengers see their own tickets, drivers those assigned to them, admins all."""
    rows = await tickets.list_tickets(
        session,
        actor=actor,
        filters=tickets.TicketFilters(
            status=status,
            booking_id=booking_id,
            user_id=user_id,
            driver_id=driver_id,
            created_gte=created_gte,
            created_lt=created_lt,
        ),
        limit=params.limit,
        starting_after=uuid_cursor(params.starting_after),
    )
    return paginate(rows, params.limit, ticket_out, lambda item: item.id)


@router.get("/{ticket_id}")
async def get_ticket(ticket_id: uuid.UUID, session: Session, actor: CurrentActor) -> TicketOut:
    return ticket_out(await tickets.get_visible(session, ticket_id, actor))


@router.get(
    "/{ticket_id}/qr",
    responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}},
    response_class=Response,
)
async def ticket_qr(
    ticket_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: CurrentActor,
    format: Literal["png", "svg"] = "png",
    scale: Annotated[int, Query(ge=1, le=20)] = 4,
) -> Response:
    """The QR image, rendered on demand; cached by ETag (the payload never changes)."""
    ticket = await tickets.get_visible(session, ticket_id, actor)
    tag = qr.etag(ticket.payload, format, scale)
    headers = {"ETag": tag, "Cache-Control": "private, max-age=86400"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    media = "image/png" if format == "png" else "image/svg+xml"
    return Response(qr.render(ticket.payload, format, scale), media_type=media, headers=headers)


class VerificationOut(BaseModel):
    id: int
    accepted: bool
    reason: str
    driver_id: str
    source: str
    flagged: bool
    location: dict[str, Any] | None
    scanned_at: datetime


class ProofOut(BaseModel):
    """A ticket's anchor proof. Saved to a file, it is what `tollgate anchors verify-proof`
    checks against the chain alone."""

    object: str = "ticket_proof"
    ticket_id: uuid.UUID
    anchored: bool = Field(description="True once the batch has its confirmations on chain")
    status: Literal["NOT_BATCHED", "PENDING", "SUBMITTED", "CONFIRMED", "FAILED"] = Field(
        description="NOT_BATCHED until the next anchoring run; then the batch's status"
    )
    message: str
    batch_id: int | None = None
    tree: str | None = Field(None, description="rfc6962-sha256: SHA-256, 0x00 leaf, 0x01 node")
    leaf: str | None = Field(None, description="SHA-256 of the ticket's QR payload")
    leaf_index: int | None = None
    tree_size: int | None = None
    siblings: list[str] | None = Field(None, description="RFC 6962 audit path, leaf first")
    root: str | None = None
    chain_id: int | None = None
    contract_address: str | None = None
    transaction_hash: str | None = None
    block_number: int | None = None
    confirmations: int | None = None
    anchored_at: datetime | None = Field(None, description="Timestamp of the anchoring block")


MESSAGES = {
    "NOT_BATCHED": "not anchored yet: the ticket joins the next anchoring batch",
    "PENDING": "not anchored yet: its batch is about to be sent",
    "SUBMITTED": "not anchored yet: the transaction waits for its confirmations",
    "CONFIRMED": "anchored: the root is on chain with the required confirmations",
    "FAILED": "not anchored yet: sending the batch failed and will be retried",
}


@router.get("/{ticket_id}/proof")
async def ticket_proof(
    ticket_id: uuid.UUID, request: Request, session: Session, actor: CurrentActor
) -> ProofOut:
    """The ticket's Merkle proof and where its root is on chain (also after cleanup)."""
    found = await anchoring.ticket_proof(session, ticket_id)
    if not tickets.can_read(actor, found):
        raise NotFound(f"No ticket {ticket_id}", param="id")
    batch = found.batch
    status = batch.status if batch is not None else "NOT_BATCHED"
    out = ProofOut(
        ticket_id=ticket_id,
        anchored=status == "CONFIRMED",
        status=status,
        message=MESSAGES[status],
        batch_id=batch.id if batch is not None else None,
    )
    if found.proof is None or batch is None:
        return out
    document = found.proof.to_document()
    del document["ticket_id"]
    confirmations = batch.confirmations
    latest = await request.app.state.block_height.latest()
    if latest is not None and batch.block_number is not None:
        confirmations = max(latest - batch.block_number + 1, 0)
    return out.model_copy(
        update={**document, "confirmations": confirmations, "anchored_at": batch.anchored_at}
    )


@router.get("/{ticket_id}/verifications")
async def ticket_verifications(
    ticket_id: uuid.UUID,
    session: Session,
    _: Annotated[Actor, Depends(require_roles(Role.PLATFORM_ADMIN, Role.BILLING_ADMIN))],
) -> list[VerificationOut]:
    """The verification log of one ticket, accepted and refused attempts alike."""
    return [
        VerificationOut(
            id=row.id,
            accepted=row.accepted,
            reason=row.reason,
            driver_id=row.driver_id,
            source=row.source,
            flagged=row.flagged,
            location=row.location,
            scanned_at=row.scanned_at,
        )
        for row in await tickets.verifications(session, ticket_id)
    ]


@router.delete("/{ticket_id}")
async def cancel_ticket(
    ticket_id: uuid.UUID,
    request: Request,
    session: Session,
    actor: CurrentActor,
    reason: Annotated[str, Query(min_length=1, max_length=500)] = "cancelled by request",
) -> TicketOut:
    """Cancel an ACTIVE ticket (its passenger or an admin); any other state is a 409."""
    ticket = await tickets.get_visible(session, ticket_id, actor)
    if not (actor.is_admin or (actor.role is Role.CUSTOMER and ticket.user_id == actor.id)):
        raise PermissionDenied("Only the passenger or an admin may cancel a ticket")
    cancelled = await tickets.cancel(session, ticket_id, actor=actor, reason=reason)

    async def tell() -> None:
        in_background(request, notify(request, ticket_id, TicketStatus.CANCELLED))

    after_commit(request, tell)
    return ticket_out(cancelled)
