"""The champion step every registered model shares."""

import dagster as dg

from orchestration.defs.shared.resources import MlflowResource
from training import tracking


def promote(
    context: dg.AssetExecutionContext, mlflow: MlflowResource, challenger: dict, experiment: str, model_name: str
) -> dg.Output[dict]:
    """``model_name@champion`` moved to the challenger (its asset runs only when the blocking gate passed)."""
    mlflow.configure(experiment)
    version = challenger["version"]
    tracking.promote_to_champion(version, model_name)
    context.log.info(f"{model_name}@{tracking.CHAMPION} -> v{version}")
    return dg.Output(
        challenger,
        metadata={
            "model": f"{model_name}@{tracking.CHAMPION}",
            "version": version,
            "model_family": challenger["model_family"],
            "validation_log_loss": challenger["validation_log_loss"],
        },
    )
