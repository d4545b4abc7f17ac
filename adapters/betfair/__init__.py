"""Betfair Exchange, on betfairlightweight. So far: ``historical`` (Betfair's historical stream files -> market
books, tennis ``MATCH_ODDS`` markets paired with our matches); the live streams, orders and the exchange
adapter are still to come."""
