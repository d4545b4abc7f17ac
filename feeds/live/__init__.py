"""The live feed: message protocol, replay server, market simulator and resilient client."""
