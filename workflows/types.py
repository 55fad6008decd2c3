"""Inputs and outputs of workflows and activities: one model each, so fields can be added."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field


class PurgeInput(BaseModel):
    """Empty today; a model so a later field (e.g. a batch size) stays compatible."""


class PurgeResult(BaseModel):
    deleted: int


class TicketInput(BaseModel):
    ticket_id: UUID
    booking_id: str
    driver_id: str
    valid_until: datetime


class TicketResult(BaseModel):
    ticket_id: UUID
    status: str


class CancelTicket(BaseModel):
    """Argument of the ``cancel`` signal an admin sends from the Temporal UI."""

    reason: str = "cancelled by an operator"
    by: str = "temporal-ui"


class TicketStatusChanged(BaseModel):
    """The API changed the row (used, cancelled): the workflow stops waiting."""

    status: str


class TicketActivityInput(BaseModel):
    ticket_id: UUID
    reason: str | None = None
    actor: str = "system"


class TicketActivityResult(BaseModel):
    status: str


class AnchorRunInput(BaseModel):
    """Argument of the anchoring Schedule and of ``tollgate anchors run`` (from settings)."""

    max_leaves: int = 1000
    confirmations: int = 1
    poll_seconds: int = 5
    confirm_timeout_seconds: int = 1800
    chain_task_queue: str = "tollgate-chain"
    max_batches: int = 50


class AnchoredBatch(BaseModel):
    batch_id: int
    leaf_count: int
    status: str
    tx_hash: str | None = None
    error: str | None = None


class AnchorRunResult(BaseModel):
    batches: list[AnchoredBatch] = []
    current_batch_id: int | None = None


class CreateBatchInput(BaseModel):
    max_leaves: int


class BatchRef(BaseModel):
    """The batch a run works on; ``batch_id`` None when nothing is waiting."""

    batch_id: int | None = None
    leaf_count: int = 0


class BatchInput(BaseModel):
    batch_id: int


class SubmitBatchResult(BaseModel):
    tx_hash: str


class CheckBatchInput(BaseModel):
    batch_id: int
    confirmations: int


class CheckBatchResult(BaseModel):
    status: str
    confirmations: int = 0
    block_number: int | None = None
    error: str | None = None


class FailBatchInput(BaseModel):
    batch_id: int
    error: str


class ConfirmRunInput(BaseModel):
    confirmations: int = 1
    chain_task_queue: str = "tollgate-chain"


class SubmittedBatches(BaseModel):
    batch_ids: list[int]


class ConfirmRunResult(BaseModel):
    checked: int = Field(description="Batches whose transaction was looked at")
    confirmed: int
