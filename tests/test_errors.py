"""NaN/Inf detection gives the project's error with a one-line message."""

import numpy as np
import pytest

from refusal_jax import errors


def test_check_finite():
  errors.check_finite('ok', np.ones(3))
  errors.check_finite('ints', np.arange(3))
  with pytest.raises(errors.NumericsError) as e:
    errors.check_finite('the logits', np.array([1.0, np.nan, np.inf]))
  assert '2 NaN/Inf' in str(e.value) and '\n' not in str(e.value)
