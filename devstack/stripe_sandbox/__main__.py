"""``python -m devstack.stripe_sandbox --port 12111 --state-file .data/stripe-sandbox.sqlite3``"""

import argparse
from pathlib import Path

from .config import DEFAULT_PORT
from .faults import KINDS
from .server import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.stripe_sandbox",
        description="A stateful server that speaks the subset of Stripe's API Tollgate uses.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state-file", type=Path, help="SQLite file; default: in memory")
    parser.add_argument("--webhook-secret", help="Secret every webhook endpoint signs with")
    parser.add_argument(
        "--webhook-url", action="append", default=[], help="Endpoint receiving every event"
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="0..1")
    parser.add_argument(
        "--fault-kinds", default=",".join(KINDS), help=f"Comma-separated among {','.join(KINDS)}"
    )
    parser.add_argument(
        "--fault-timeout-seconds",
        type=float,
        default=2.0,
        help="How long a 'timeout' fault holds the response",
    )
    parser.add_argument("--fault-seed", type=int, help="Seed of the fault draws")
    parser.add_argument("--payout-delay-seconds", type=float, default=2.0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    run(
        args.host,
        args.port,
        args.state_file,
        args.webhook_secret,
        args.fault_rate,
        fault_kinds=[kind for kind in args.fault_kinds.split(",") if kind],
        fault_timeout_seconds=args.fault_timeout_seconds,
        fault_seed=args.fault_seed,
        webhook_urls=args.webhook_url,
        payout_delay_seconds=args.payout_delay_seconds,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
