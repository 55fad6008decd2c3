"""Inputs and outputs of workflows and activities: one model each, so fields can be added."""

from pydantic import BaseModel


class PurgeInput(BaseModel):
    """Empty today; a model so a later field (e.g. a batch size) stays compatible."""


class PurgeResult(BaseModel):
    deleted: int
