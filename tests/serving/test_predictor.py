"""The compiled predictors give exactly what the models' own predict_proba gives."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from features.prematch import FEATURES
from serving.predictor import compile_predictor
from training.models import CANDIDATES, fit_candidate


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    n = 3000
    x = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=list(FEATURES))
    x.loc[rng.uniform(size=n) < 0.1, "age_a"] = np.nan  # missing values must be imputed the same way
    x["elo_prob"] = 1 / (1 + np.exp(-x["elo_diff"]))
    logit = 0.8 * x["elo_diff"] - 0.3 * x["log_rank_diff"].fillna(0) + 0.2 * x["age_a"].fillna(0)
    x["a_won"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x.iloc[:2000], x.iloc[2000:]


@pytest.mark.parametrize("name", [c.name for c in CANDIDATES])
def test_compiled_predictor_matches_predict_proba(frames, name):
    train, valid = frames
    candidate = next(c for c in CANDIDATES if c.name == name)
    if name == "xgboost":
        candidate = type(candidate)(**{**candidate.__dict__, "params": {**candidate.params, "n_estimators": 50}})
    model = fit_candidate(candidate, train, valid)
    predict, kind = compile_predictor(model, list(FEATURES))
    expected = model.predict_proba(valid[list(FEATURES)])[:, 1]
    got = predict(valid[list(FEATURES)].to_numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert kind == {"logistic": "numpy", "xgboost": "xgboost"}.get(name, "generic")


def test_pipeline_without_scaler_or_imputer_falls_back_to_the_model():
    x = np.random.default_rng(0).normal(size=(50, 2))
    model = Pipeline([("logit", LogisticRegression())]).fit(x, (x[:, 0] > 0).astype(int))
    predict, kind = compile_predictor(model, ["a", "b"])
    assert kind == "generic"


def test_stacked_symmetric_xgboost_is_bit_for_bit_the_two_call_one(frames):
    """The service asks XGBoost once for a row and its mirror (``symmetric(..., stacked=True)``): the same
    bits as two calls, for one row (the live path) and for batches."""
    from training.models import symmetric

    train, valid = frames
    candidate = next(c for c in CANDIDATES if c.name == "xgboost")
    candidate = type(candidate)(**{**candidate.__dict__, "params": {**candidate.params, "n_estimators": 50}})
    predict, kind = compile_predictor(fit_candidate(candidate, train, valid), list(FEATURES))
    assert kind == "xgboost"
    two_calls, one_call = symmetric(predict, FEATURES), symmetric(predict, FEATURES, stacked=True)
    x = valid[list(FEATURES)].to_numpy()
    for rows in [x[i : i + 1] for i in range(0, 200, 7)] + [x[:5], x]:
        assert one_call(rows).tolist() == two_calls(rows).tolist()
