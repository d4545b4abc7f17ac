"""betting: the trading core — value detection, staking, risk limits, the exchange port with a
paper exchange, orders, settlement and P&L.

Framework-free by design: no dagster, no bentoml, no sqlalchemy; imports only ``features`` besides itself.
Callers (the live engine, the Dagster assets) persist the records this package produces (every record has ``to_dict`` /
``from_dict``) and feed them back in on restart.

Where a rule lives:

- ``money``       rounding of amounts (pennies) and stakes (down to the currency step)
- ``ladder``      the Betfair price ladder (350 ticks), valid odds, conservative rounding
- ``payoff``      what one bet wins or loses (liability, profit if the selection wins/loses)
- ``value``       edge after commission, ``Opportunity``, ``detect_value``
- ``staking``     fractional Kelly after commission
- ``exposure``    worst-case loss over the outcomes of a market (matched + unmatched orders)
- ``risk``        ``RiskLimits``, ``RiskBook``, ``check`` -> ``RiskDecision``
- ``market``      ``MarketBook``: one market-data update, as a feed produces it
- ``clock``       injectable event-time clocks (never wall time inside the exchange)
- ``exchange``    ``BaseExchange`` port; ``paper`` the ``PaperExchange`` adapter; ``matching``
                  its pure matching arithmetic
- ``settlement``  settling a market from the match outcome (``features.matches`` rule)
- ``records``     orders, fills, bets, settlements, P&L, the event-log ``EventKind``
- ``codec``       JSON-ready ``to_dict`` / ``from_dict`` for every record
- ``prior``       the margin-free mid of a two-runner book; the pre-match prior of an in-play match
- ``policy``      ``TradingPolicy``: bankroll, triggers, value, staking, risk limits, exchange rules
- ``trading``     ``TradingCore``: a match message or a market book in, decisions out — the one trading
                  core the live engine (asyncio) and the backtests (synchronously) both run
"""
