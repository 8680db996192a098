"""The matmul precision policy: float32 runs trace their matmuls at
'highest' (no TF32 on GPUs), bfloat16 runs at the backend's default, and
the policy reaches the forward pass, generation and the sweep engine.

On CPU every float32 matmul is exact whatever the setting, so what these
tests read is what the policy asks for: the precision in the traced
computation (its StableHLO text, or `jax.config` while tracing)."""

import re

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from refusal_jax import errors
from refusal_jax.models import matmul_precision
from refusal_jax.models import model as model_lib
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import Metric

CFG = ModelConfig.llama(vocab_size=37, d_model=16, num_layers=2, num_heads=2,
                        num_kv_heads=1, head_dim=8, mlp_dim=24)
IDS = np.random.RandomState(0).randint(1, 37, (3, 7)).astype(np.int32)
SEEN = []  # jax.config's matmul precision each time `_Record` was traced


@flax.struct.dataclass
class _Record:
  """An intervention that changes nothing and notes the precision in force
  when it is traced."""
  tag: int = flax.struct.field(pytree_node=False, default=0)

  def apply(self, site, layer, x, ctx):
    del ctx
    if site == 'resid_pre' and layer == 0:
      SEEN.append(matmul_precision.enclosing())
    return x


def _record_build(row, shared):
  del row, shared
  return _Record()


def _model(dtype, policy='auto'):
  params = transformer.init_params(CFG, seed=0)
  params = jax.tree.map(lambda a: a.astype(dtype), params)
  return model_lib.Model(CFG, params, matmul_precision=policy)


def _dot_precisions(text: str) -> set[str]:
  return set(re.findall(r'dot_general.*precision = \[(\w+), \w+\]', text))


def test_resolve_and_check():
  assert matmul_precision.resolve('auto', jnp.float32) == 'highest'
  assert matmul_precision.resolve('auto', jnp.bfloat16) is None
  assert matmul_precision.resolve('auto', 'float32') == 'highest'
  assert matmul_precision.resolve('default', jnp.float32) == 'default'
  assert matmul_precision.resolve('high', jnp.bfloat16) == 'high'
  with jax.default_matmul_precision('default'):  # an explicit outer choice
    assert matmul_precision.resolve('auto', jnp.float32) is None
    assert matmul_precision.effective('auto', jnp.float32) == 'default'
  assert matmul_precision.effective('auto', jnp.bfloat16) == (
      'backend default')
  with pytest.raises(errors.ConfigError, match='tf32'):
    matmul_precision.check('tf32')


def test_float32_forward_under_the_policy_equals_the_highest_one():
  model = _model(jnp.float32)
  got = np.asarray(model.forward(IDS).logits)
  with jax.default_matmul_precision('highest'):
    want = np.asarray(model.forward(IDS).logits)
  np.testing.assert_array_equal(got, want)
  explicit = _model(jnp.float32, 'highest')
  np.testing.assert_array_equal(np.asarray(explicit.forward(IDS).logits),
                                want)


@pytest.mark.parametrize('dtype,want', [(jnp.float32, {'HIGHEST'}),
                                        (jnp.bfloat16, {'DEFAULT'})])
def test_the_lowered_forward_carries_the_policys_precision(dtype, want):
  params = jax.tree.map(lambda a: a.astype(dtype),
                        transformer.init_params(CFG, seed=0))
  fn = jax.jit(lambda p, ids: transformer.forward(p, CFG, ids).logits)
  with matmul_precision.scope('auto', dtype):
    text = fn.lower(params, IDS).as_text()
  assert _dot_precisions(text) == want
  # without the policy JAX leaves every dot at the backend's default
  assert _dot_precisions(fn.lower(params, IDS).as_text()) == {'DEFAULT'}


@pytest.mark.parametrize('dtype,policy,want', [
    (jnp.float32, 'auto', 'highest'), (jnp.bfloat16, 'auto', None),
    (jnp.float32, 'default', 'default'), (jnp.bfloat16, 'high', 'high')])
def test_model_forward_and_generate_trace_under_the_policy(dtype, policy,
                                                          want):
  model = _model(dtype, policy)  # each case traces afresh: (dtype, precision)
  SEEN.clear()
  model.forward(IDS, interventions=_Record(tag=1))
  model.generate(IDS, max_new_tokens=2, interventions=_Record(tag=2))
  assert SEEN and set(SEEN) == {want}


@pytest.mark.parametrize('dtype,want', [(jnp.float32, 'highest'),
                                        (jnp.bfloat16, None)])
def test_the_engine_sweeps_under_the_policy(dtype, want):
  model = _model(dtype)
  SEEN.clear()
  engine.sweep(model.params, CFG, IDS, np.ones_like(IDS),
               np.zeros((2, 1), np.float32), _record_build,
               metric=Metric('refusal_score', (3,)))
  assert SEEN and set(SEEN) == {want}
  # an enclosing choice is kept
  SEEN.clear()
  with jax.default_matmul_precision('high'):
    engine.sweep(model.params, CFG, IDS[:2], np.ones_like(IDS[:2]),
                 np.zeros((2, 1), np.float32), _record_build,
                 metric=Metric('refusal_score', (3,)))
  assert SEEN and set(SEEN) == {'high'}
