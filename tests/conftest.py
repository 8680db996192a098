import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'pipeline'))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')


import jax  # pylint: disable=g-import-not-at-top,g-bad-import-order
import pytest  # pylint: disable=g-import-not-at-top,g-bad-import-order


@pytest.fixture(scope='module')
def highest_matmul_precision():
  """Pins float32 matmuls at 'highest' for a module's tests: JAX's default on
  NVIDIA GPUs is TF32 (1e-3 off at logit scale 14), so float32 comparisons
  hold on a GPU or TPU as on the CPU (models/matmul_precision.py). Use with
  `pytestmark = pytest.mark.usefixtures('highest_matmul_precision')`."""
  with jax.default_matmul_precision('highest'):
    yield
