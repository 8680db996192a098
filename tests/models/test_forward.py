"""Behaviour of the pure forward pass: slicing, capture, logits selection."""

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import numerics
from refusal_jax import errors
from refusal_jax.models import generation
from refusal_jax.models import layers
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig

CFG = ModelConfig.gemma2(vocab_size=31, d_model=14, num_layers=4, num_heads=2,
                         num_kv_heads=1, head_dim=8, mlp_dim=17,
                         sliding_window=3)


@pytest.fixture(scope='module')
def setup():
  params = transformer.init_params(CFG, seed=1)
  ids = np.random.RandomState(0).randint(0, 31, size=(2, 9))
  mask = np.ones_like(ids)
  mask[0, :3] = 0
  return params, jnp.asarray(ids), jnp.asarray(mask)


def test_stop_then_resume_equals_full_pass(setup):
  params, ids, mask = setup
  full = transformer.forward(params, CFG, ids, attention_mask=mask)
  for split in (0, 1, 3, 4):
    head = transformer.forward(params, CFG, ids, attention_mask=mask,
                               stop_layer=split)
    assert head.logits is None
    if split == 0:  # resuming at layer 0 means embedding the tokens
      np.testing.assert_array_equal(
          np.asarray(head.resid),
          np.asarray(CFG.d_model ** 0.5 * params['embed_tokens'][...][ids],
                     np.float32))
      continue
    tail = transformer.forward(params, CFG, attention_mask=mask,
                               start_layer=split, resid=head.resid)
    np.testing.assert_array_equal(np.asarray(tail.logits),
                                  np.asarray(full.logits))


def test_capture_is_selective_and_positions_gathered(setup):
  params, ids, mask = setup
  out = transformer.forward(params, CFG, ids, attention_mask=mask,
                            capture=[('resid_pre', 2), ('mlp_out', 1)])
  assert set(out.captured) == {('resid_pre', 2), ('mlp_out', 1)}
  assert out.captured[('resid_pre', 2)].shape == (2, 9, 14)
  none = transformer.forward(params, CFG, ids, attention_mask=mask)
  assert none.captured == {}
  pos = jnp.array([[8, 5], [0, 8]])
  sub = transformer.forward(params, CFG, ids, attention_mask=mask,
                            capture=[('resid_pre', 2)], capture_positions=pos)
  full = np.asarray(out.captured[('resid_pre', 2)])
  got = np.asarray(sub.captured[('resid_pre', 2)])
  numerics.assert_close(got[0], full[0, [8, 5]], ulps=numerics.FORWARD_ULPS)
  numerics.assert_close(got[1], full[1, [0, 8]], ulps=numerics.FORWARD_ULPS)
  # resid_pre[l + 1] is resid_post[l].
  both = transformer.forward(params, CFG, ids, attention_mask=mask,
                             capture=[('resid_post', 1), ('resid_pre', 2)])
  np.testing.assert_array_equal(np.asarray(both.captured[('resid_post', 1)]),
                                np.asarray(both.captured[('resid_pre', 2)]))


def test_logits_at_last_and_positions(setup):
  params, ids, mask = setup
  full = np.asarray(transformer.forward(params, CFG, ids,
                                        attention_mask=mask).logits)
  last = np.asarray(transformer.forward(params, CFG, ids, attention_mask=mask,
                                        logits_at='last').logits)
  assert last.shape == (2, 1, 31)
  numerics.assert_close(last[:, 0], full[:, -1], ulps=numerics.FORWARD_ULPS)
  pos = jnp.array([[3, 4], [1, 2]])
  some = np.asarray(transformer.forward(params, CFG, ids, attention_mask=mask,
                                        logits_at=pos).logits)
  numerics.assert_close(some[1], full[1, [1, 2]], ulps=numerics.FORWARD_ULPS)


@pytest.mark.parametrize('layer', [0, 1])  # sliding, then global
def test_block_at_query_slots_equals_full_block(setup, layer):
  params, ids, mask = setup
  model = nnx.merge(transformer.graphdef(CFG), params)
  x = transformer.forward(params, CFG, ids, attention_mask=mask,
                          stop_layer=layer).resid
  token_mask = mask.astype(bool)
  cos, sin = layers.rope_cos_sin(transformer.default_positions(token_mask),
                                 CFG, x.dtype)
  full, _ = transformer.apply_block(model.layers[layer], layer, x, cos, sin,
                                    token_mask)
  index = jnp.array([[8, 4, 3], [0, 8, 5]])
  sub, _ = transformer.apply_block(model.layers[layer], layer, x, cos, sin,
                                   token_mask, query_index=index)
  assert sub.shape == (2, 3, CFG.d_model)
  for row in range(2):
    numerics.assert_close(sub[row], full[row, index[row]], ulps=numerics.FORWARD_ULPS)


def test_padding_does_not_change_real_tokens(setup):
  params, ids, mask = setup
  alone = transformer.forward(params, CFG, ids[0:1, 3:])
  padded = transformer.forward(params, CFG, ids[0:1], attention_mask=mask[0:1])
  numerics.assert_close(np.asarray(padded.logits)[0, 3:],
                        alone.logits[0], ulps=numerics.FORWARD_ULPS)


def test_bad_layer_ranges_raise(setup):
  params, ids, _ = setup
  with pytest.raises(errors.ConfigError):
    transformer.forward(params, CFG, ids, stop_layer=9)
  with pytest.raises(errors.ConfigError):
    transformer.forward(params, CFG, ids, start_layer=2)
  with pytest.raises(errors.ConfigError):
    transformer.forward(params, CFG, ids, capture=[('resid_mid', 0)])


# Published parameter counts of the full-size models.
@pytest.mark.parametrize('name,count', [('gemma2_2b', 2_614_341_888),
                                        ('gemma2_9b', 9_241_705_984),
                                        ('llama31_8b', 8_030_261_248)])
def test_full_size_presets_have_published_parameter_counts(name, count):
  cfg = ModelConfig.preset(name)
  abstract = transformer.abstract_params(cfg, jnp.bfloat16)
  leaves = jax.tree.leaves(abstract)
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
  assert sum(int(np.prod(x.shape)) for x in leaves) == count
  # The forward pass traces at full size without allocating anything.
  out = jax.eval_shape(
      lambda p: transformer.forward(p, cfg, jnp.zeros((1, 8), jnp.int32),
                                    logits_at='last').logits, abstract)
  assert out.shape == (1, 1, cfg.vocab_size)


def test_bf16_embedding_lookup_is_the_plain_gather():
  table = jax.random.normal(jax.random.key(0), (50, 8)).astype(jnp.bfloat16)
  ids = jnp.array([[0, 49, 7], [7, 7, 3]])
  got = transformer.embedding_lookup(table, ids)
  assert got.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(got, np.float32),
                                np.asarray(table[ids], np.float32))


_PASSES = []


@flax.struct.dataclass
class _CountPasses:
  """Counts the passes through layer 0 (one per decoding step) in _PASSES,
  by a host callback at its resid_pre."""

  def apply(self, site, layer, x, ctx):
    del ctx
    if site == 'resid_pre' and layer == 0:
      jax.debug.callback(lambda: _PASSES.append(1), ordered=True)
    return x


def test_generation_stops_once_every_row_has_finished(setup):
  params, ids, mask = setup
  free = np.asarray(generation.greedy_generate(
      params, CFG, ids, mask, max_new_tokens=6))
  # Each row ends at its own first token: row 0 at once, row 1 later.
  stop_at = {0: 0, 1: 2}
  eos = np.unique([free[r, t] for r, t in stop_at.items()])
  _PASSES.clear()
  got = np.asarray(generation.greedy_generate(
      params, CFG, ids, mask, max_new_tokens=6, eos_ids=jnp.asarray(eos),
      pad_id=30, interventions=_CountPasses()))
  for r in range(2):
    end = int(np.flatnonzero(np.isin(free[r], eos))[0])
    np.testing.assert_array_equal(got[r, :end + 1], free[r, :end + 1])
    assert (got[r, end + 1:] == 30).all()
  last = max(int(np.flatnonzero(np.isin(free[r], eos))[0]) for r in range(2))
  # The prefill and one step per token after the first, up to the last
  # row's stop token; none after it.
  assert last < 5 and len(_PASSES) == 1 + last
  _PASSES.clear()
  generation.greedy_generate(params, CFG, ids, mask, max_new_tokens=6,
                             interventions=_CountPasses())
  assert len(_PASSES) == 6


def _loop_copies(hlo: str, shape: str) -> list[str]:
  """Copies of an array of `shape` (e.g. 'f32[4,2,15,1,8]') made inside a
  computation other than the entry one (a loop body, a branch)."""
  found, entry = [], False
  for line in hlo.splitlines():
    if line and not line.startswith(' '):
      entry = line.startswith('ENTRY')
    elif not entry and f'= {shape}{{' in line and ' copy(' in line:
      found.append(line.strip())
  return found


@pytest.mark.parametrize('fn', ['greedy_generate', 'decode'])
def test_generation_updates_the_cache_in_place(setup, fn):
  # Each generated token writes one slot per layer; a loop that rebuilt
  # the [L, B, S, K, H] cache (as restacking per-layer slices did) copied
  # all of it at every token, which made generation about 1.9x slower on
  # SmolLM2 (BUILD.md, "Dissecting SmolLM2 in paper mode").
  params, ids, mask = setup
  g = 6
  if fn == 'greedy_generate':
    lowered = generation.greedy_generate.lower(params, CFG, ids, mask,
                                               max_new_tokens=g)
  else:
    state = generation.prefill(params, CFG, ids, mask, max_new_tokens=g)
    lowered = generation.decode.lower(params, CFG, state, g)
  s = ids.shape[1] + g
  shape = (f'f32[{CFG.num_layers},{ids.shape[0]},{s},{CFG.num_kv_heads},'
           f'{CFG.head_dim}]')
  hlo = lowered.compile().as_text()
  assert f'{shape}{{' in hlo  # the cache is where the check looks
  assert _loop_copies(hlo, shape) == []
