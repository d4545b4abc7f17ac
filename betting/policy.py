"""The trading policy: every setting a trading decision depends on, in one frozen value.

The live engine, the backtests, the control plane's pre-match scan and settlement, and the live API
take the same ``TradingPolicy``, so a backtest trades with exactly the rules the engine runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from betting.paper import PaperExchangeConfig
from betting.risk import RiskLimits
from betting.staking import StakingConfig
from betting.value import ValueConfig
from features.triggers import TriggerConfig


@dataclass(frozen=True)
class TradingPolicy:
    """Bankroll, when to predict (triggers), what is value, how much to stake, the risk limits and the
    exchange's rules (commission, bet delay, settlement)."""

    bankroll: float = 1000.0
    triggers: TriggerConfig = field(default_factory=TriggerConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    staking: StakingConfig = field(default_factory=StakingConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    exchange: PaperExchangeConfig = field(default_factory=PaperExchangeConfig)
