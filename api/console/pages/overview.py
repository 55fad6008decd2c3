"""The console's home: stats cards and charts from database aggregates (payouts completed
and failed per day, money held in escrow, dunning outcomes, the anchoring backlog), the
stack's health (loaded after the page), and where the other operator tools live."""

from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.console.auth import ConsoleUser
from api.console.charts import Series, bar_list, column_chart
from api.console.web import console_router, money, render
from api.deps import Session
from api.routers.health import component_health
from services import escrow, overview, payouts

router = console_router()

CHART_DAYS = 14
DUNNING_DAYS = 30


@router.get("")
async def overview_page(request: Request, session: Session, _: ConsoleUser) -> HTMLResponse:
    now = datetime.now(UTC)
    payout_stats = await payouts.stats(session, now=now)
    hold_stats = await escrow.stats(session, now=now)
    per_day = await overview.payout_outcomes_per_day(session, days=CHART_DAYS, now=now)
    dunning = await overview.dunning_outcomes(session, since=now - timedelta(days=DUNNING_DAYS))
    backlog = await overview.anchoring_backlog(session)

    payouts_chart = column_chart(
        f"Payouts per day, last {CHART_DAYS} days (UTC)",
        [d.day.strftime("%m-%d") for d in per_day],
        [
            (Series("completed", "ok"), [d.completed for d in per_day]),
            (Series("failed", "bad"), [d.failed for d in per_day]),
        ],
        width=1200,
        height=220,
    )
    held = hold_stats["held_by_currency"]
    escrow_chart = bar_list(
        "Held in escrow now, by currency",
        [(currency, amount, money(amount, currency), "info") for currency, amount in held.items()],
    )
    dunning_chart = bar_list(
        f"Dunning outcomes, last {DUNNING_DAYS} days",
        [
            ("charge failed", dunning.entered, str(dunning.entered), "warn"),
            ("recovered", dunning.recovered, str(dunning.recovered), "ok"),
            ("unpaid", dunning.unpaid, str(dunning.unpaid), "bad"),
            ("canceled", dunning.canceled, str(dunning.canceled), "muted"),
        ],
    )
    batches = backlog.batches_by_status
    anchoring_chart = bar_list(
        "Anchoring backlog",
        [
            ("tickets waiting", backlog.waiting_tickets, str(backlog.waiting_tickets), "info"),
            *(
                (
                    f"batches {status.lower()}",
                    batches.get(status, 0),
                    str(batches.get(status, 0)),
                    css,
                )
                for status, css in (("PENDING", "warn"), ("SUBMITTED", "info"), ("FAILED", "bad"))
            ),
        ],
    )
    week = per_day[-7:]
    cards = [
        {
            "label": "Payouts completed, 7 days",
            "value": sum(d.completed for d in week),
            "href": "/admin/payouts?status=completed",
        },
        {
            "label": "Payouts failed, 7 days",
            "value": sum(d.failed for d in week),
            "href": "/admin/payouts?status=failed",
            "alert": payout_stats.count_by_status.get("failed", 0) > 0,
            "note": f"{payout_stats.count_by_status.get('failed', 0)} failed now",
        },
        {
            "label": "Payouts pending",
            "value": payout_stats.count_by_status.get("pending", 0),
            "href": "/admin/payouts?status=pending",
            "note": f"{payout_stats.due} past their date",
        },
        {
            "label": "Held in escrow",
            "value": ", ".join(money(a, c) for c, a in held.items()) or "nothing",
            "href": "/admin/escrow",
            "note": f"{hold_stats['released_today']} released today",
        },
        {
            "label": "Holds due now",
            "value": hold_stats["due_for_release"],
            "href": "/admin/escrow?due=1",
            "alert": hold_stats["due_for_release"] > 0,
        },
        {
            "label": "Subscriptions in dunning",
            "value": dunning.past_due_now,
            "note": f"{dunning.unpaid_now} unpaid",
        },
        {
            "label": "Tickets to anchor",
            "value": backlog.waiting_tickets,
            "note": (
                f"oldest {backlog.oldest_waiting:%Y-%m-%d %H:%M} UTC"
                if backlog.oldest_waiting
                else "none waiting"
            ),
            "alert": batches.get("FAILED", 0) > 0,
        },
    ]
    return render(
        request,
        "overview.html",
        {
            "cards": cards,
            "payouts_chart": payouts_chart,
            "bar_charts": [escrow_chart, dunning_chart, anchoring_chart],
        },
        active="overview",
    )


@router.get("/health")
async def health(request: Request, _: ConsoleUser) -> HTMLResponse:
    """The components' health (a fragment the overview loads after it is shown)."""
    components = await component_health(request)
    return render(request, "_health.html", {"components": components})
