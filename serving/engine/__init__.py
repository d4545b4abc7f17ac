"""The streaming engine (data plane): the asyncio loop around the trading core — feed in (``feeds.live``),
``betting.trading.TradingCore`` decisions, predictions from the BentoML service, the durable event log out.
Only its own process and its tests import it."""
