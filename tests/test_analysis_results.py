"""robustjax.analysis.results: the JSON / concatenation convention of the paper diagnostics."""

import json
import math

import numpy as np
import pytest

from robustjax.analysis import (
    AlignmentResult,
    LinearityResult,
    SigmaPathResult,
    concatenate_results,
)
from robustjax.analysis.results import jsonable, quantile_summary


def _lin(b, radii=(0.0, 1.0)):
    t = len(radii)
    dev = np.arange(b * t, dtype=float).reshape(b, t)
    rel = dev.copy()
    rel[0, 1] = np.inf
    return LinearityResult(radii=np.asarray(radii), deviation=dev, change=dev + 1, relative_deviation=rel,
                           linear_change=np.ones(b))


def test_jsonable_handles_non_finite_arrays_and_scalars():
    out = jsonable({"a": np.array([1.0, np.nan, np.inf]), "b": np.float32(2.5), "c": (np.int64(3), True),
                    "d": np.zeros((3, 4)), "e": math.inf})
    assert out == {"a": [1.0, None, None], "b": 2.5, "c": [3, True], "d": [[0.0] * 4] * 3, "e": None}
    assert jsonable({"big": np.zeros(10)}, max_array_size=5) == {"big": {"shape": [10], "omitted": True}}


def test_to_json_is_strict_json_and_summary_skips_non_finite():
    r = _lin(3)
    text = json.dumps(r.to_json(), allow_nan=False)
    back = json.loads(text)
    assert back["analysis"] == "LinearityResult" and back["relative_deviation"][0][1] is None
    # quantiles ignore the inf entry of example 0 at radius 1
    assert back["summary"]["relative_deviation"]["mean"][1] == pytest.approx(np.mean([3.0, 5.0]))
    assert r.num_examples == 3
    q = quantile_summary(np.array([[1.0], [np.nan]]))
    assert q["mean"][0] == 1.0


def test_concatenate_results_joins_examples_and_checks_shared_fields():
    a, b = _lin(2), _lin(3)
    joined = concatenate_results([a, b])
    assert joined.num_examples == 5
    np.testing.assert_array_equal(joined.deviation, np.concatenate([a.deviation, b.deviation]))
    np.testing.assert_array_equal(joined.radii, a.radii)
    with pytest.raises(ValueError, match="share radii"):
        concatenate_results([a, _lin(2, radii=(0.0, 2.0))])
    with pytest.raises(ValueError, match="same AnalysisResult type"):
        concatenate_results([a, SigmaPathResult(radii=a.radii, sigma=np.ones((2, 2)), iters=3)])
    with pytest.raises(ValueError, match="at least one result"):
        concatenate_results([])
    al = AlignmentResult(np.ones((2, 3)), np.ones((2, 2)), np.ones(2), np.ones(2), k=2)
    with_baseline = AlignmentResult(np.ones((2, 3)), np.ones((2, 2)), np.ones(2), np.ones(2), k=2,
                                    random_cosines=np.ones((2, 2)), random_share=np.ones(2))
    assert concatenate_results([al, al]).random_cosines is None
    with pytest.raises(ValueError, match="disagree"):
        concatenate_results([al, with_baseline])
    with pytest.raises(ValueError, match="share k"):
        concatenate_results([al, AlignmentResult(np.ones((2, 3)), np.ones((2, 1)), np.ones(2), np.ones(2), k=1)])
