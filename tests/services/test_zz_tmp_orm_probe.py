from sqlalchemy import select, update
from tests.services.test_payments_service import completed_payment, refund
from models.payments import Refund

async def test_probe(db):
    payment = await completed_payment(db)
    r = await refund(db, payment.id, 100)
    async with db() as a, a.begin():
        x = await a.scalar(select(Refund).where(Refund.id == r.id))
        print("A sees", x.status)
        async with db() as b, b.begin():
            await b.execute(update(Refund).where(Refund.id == r.id).values(status="failed"))
        y = await a.scalar(select(Refund).where(Refund.id == r.id).with_for_update())
        print("A FOR UPDATE sees", y.status, x is y)
        z = await a.scalar(select(Refund).where(Refund.id == r.id))
        print("A plain sees", z.status)
