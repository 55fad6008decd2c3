"""The chain rail's float: the platform sender's balance of the rail's ERC-20 token, in
``USDC`` minor units (the token pays USDC and USD 1:1), for liquidity.

Synchronous like web3 (``read_float`` runs it off the event loop); outages surface as
``ProviderError``.
"""

import asyncio

from domain.liquidity import CHAIN_FLOAT_CURRENCY, Balance, token_balance_to_minor
from domain.rails import Rail
from integrations.token_contract import TokenContract


def float_balance(token: TokenContract, holder: str, *, decimals: int) -> Balance:
    """``holder``'s balance of ``token`` (with ``decimals``) as the chain rail's balance."""
    base_units = token.balance_of(holder)
    return Balance(
        rail=Rail.CHAIN.value,
        currency=CHAIN_FLOAT_CURRENCY,
        available=token_balance_to_minor(base_units, decimals),
    )


async def read_float(token: TokenContract, holder: str, *, decimals: int) -> Balance:
    return await asyncio.to_thread(float_balance, token, holder, decimals=decimals)
