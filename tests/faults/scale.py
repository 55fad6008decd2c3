"""How big the fault tests run: ``TOLLGATE_FAULT_SCALE=reduced`` (the default, in
``make test``) or ``full`` (``make chaos``)."""

import os
from dataclasses import dataclass

ENV = "TOLLGATE_FAULT_SCALE"
# Every random choice (amounts, chain items, the moments of the kills) comes from this seed,
# printed with the figures; TOLLGATE_FAULT_SEED replays a run.
SEED_ENV = "TOLLGATE_FAULT_SEED"


@dataclass(frozen=True)
class Scale:
    name: str
    # Worker SIGKILLed during a batch payout and the release of holds with their payouts.
    kill_batch_items: int
    kill_chain_share: float
    kill_holds: int
    kills: int
    # Worker SIGKILLed during dunning (on the time-skipping Temporal server).
    dunning_subscriptions: int
    dunning_days: int
    dunning_kills: int
    # Temporal stopped and restarted while holds' and payouts' timers come due.
    restart_holds: int
    temporal_outage_seconds: float
    temporal_restarts: int
    # The Stripe sandbox failing 20% of calls.
    faulty_batch_items: int
    faulty_holds: int
    # PostgreSQL restarted mid-run.
    pg_batch_items: int
    pg_holds: int
    pg_outage_seconds: float
    pg_restarts: int
    # Seconds a hold is due after it is created (its timer fires while others are created).
    due_in: float
    # The longest wait for a scenario's work to end (the pytest timeout is above it).
    patience: float


REDUCED = Scale(
    name="reduced",
    kill_batch_items=100,
    kill_chain_share=0.05,
    kill_holds=50,
    kills=2,
    dunning_subscriptions=6,
    dunning_days=8,
    dunning_kills=1,
    restart_holds=20,
    temporal_outage_seconds=8,
    temporal_restarts=1,
    faulty_batch_items=60,
    faulty_holds=30,
    pg_batch_items=50,
    pg_holds=20,
    pg_outage_seconds=6,
    pg_restarts=1,
    due_in=5,
    patience=280,
)

FULL = Scale(
    name="full",
    kill_batch_items=1000,
    kill_chain_share=0.05,
    kill_holds=2000,
    kills=6,
    dunning_subscriptions=30,
    dunning_days=35,
    dunning_kills=4,
    restart_holds=200,
    temporal_outage_seconds=30,
    temporal_restarts=2,
    faulty_batch_items=1000,
    faulty_holds=500,
    pg_batch_items=500,
    pg_holds=200,
    pg_outage_seconds=20,
    pg_restarts=2,
    due_in=30,
    patience=3000,
)

SCALES = {scale.name: scale for scale in (REDUCED, FULL)}


def current() -> Scale:
    name = os.environ.get(ENV, REDUCED.name).strip().lower() or REDUCED.name
    if name not in SCALES:
        raise ValueError(f"{ENV} must be one of {sorted(SCALES)}, not {name!r}")
    return SCALES[name]


def seed() -> int:
    return int(os.environ.get(SEED_ENV, "20261121"))
