"""The streaming engine (data plane): feed -> state -> triggers -> prediction -> value -> stake -> risk
-> exchange -> ledger."""
