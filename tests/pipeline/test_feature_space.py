"""The pipeline over SAEs at several layers: one feature space."""

import os

import numpy as np
import pytest

import numerics
import tiny_setup
from refusal_jax import errors
from refusal_jax.interventions.directions import unit
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import direction
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import greedy
from refusal_jax.pipeline import hydra
from refusal_jax.pipeline import interactions
from refusal_jax.sae import save_sae


@pytest.fixture(scope='module')
def ctx(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('tiny_space'))
  config = tiny_setup.use_layer_saes(tiny_setup.build(root), root, (1, 0), 3)
  save_sae(tiny_setup.sae_at(2, 3), os.path.join(root, 'sae2'))
  config.hydra_sae_paths = (os.path.join(root, 'sae2'),)
  config.greedy.mode, config.greedy.value = 'scale', -2.0
  return context_lib.build_context(config)


def test_the_space_is_every_sae_in_pass_order(ctx):
  assert [s.layer for s in ctx.space.saes] == [0, 1]
  assert ctx.sae is ctx.space.saes[-1]
  assert ctx.space.size == 2 * tiny_setup.A
  paths = context_lib.input_paths(ctx.config)
  assert paths[1].endswith('sae1') and paths[2].endswith('sae0')
  bad = ctx.config.copy_and_resolve_references()
  bad.sae_layers = ()
  with pytest.raises(errors.ConfigError, match='sae_layers'):
    context_lib.space_paths(bad)


def test_stage1_keeps_the_top_k_of_each_layer(ctx):
  r = np.random.RandomState(0).randn(tiny_setup.D).astype(np.float32)
  got = direction.nearest_features(ctx, r)
  feats = np.asarray(got['features'])
  sae_of, latent_of = ctx.space.locate(feats)
  assert sorted(sae_of.tolist()) == [0, 0, 0, 1, 1, 1]
  for s, sae in enumerate(ctx.space.saes):
    cos = np.asarray(unit(sae.W_dec) @ unit(r))
    assert set(latent_of[sae_of == s]) == set(np.argsort(-cos)[:3])
  assert got['hooks'] == [ctx.space.saes[s].hook_name for s in sae_of]
  assert got['score'] == sorted(got['score'], reverse=True)
  numerics.assert_close(got['cosine'], got['score'], ulps=4)


def test_stages_2_and_3_edit_each_sae_at_its_site(ctx):
  """Stage 3's pool draws on every SAE; the sweep over the space equals
  plain passes with one edit per SAE."""
  pool, stats = interactions.build_pool(ctx, [])
  assert len(pool) == ctx.config.fm.pool_size
  assert len(stats['pool_strength']) == len(pool)
  sae_of = ctx.space.locate(pool)[0]
  assert set(sae_of) == {0, 1}
  # The most active features of each SAE (the edits matter).
  feats = ([f for f, s in zip(pool, sae_of) if s == 0][:3] +
           [f for f, s in zip(pool, sae_of) if s == 1][:2])
  assert interactions.build_pool(ctx, feats[::-1])[0][:5] == feats[::-1]
  ps = ctx.prompts['harmful_train'].subset(range(5))
  masks = np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0], [0, 0, 0, 1, 1]],
                   np.float32)
  got = greedy.evaluate_sets(ctx, ps, feats, masks)
  for m, row in enumerate(masks):
    chosen = [f for f, on in zip(feats, row) if on]
    edit = evaluation.sae_ablation(ctx, chosen)
    assert isinstance(edit, tuple) == (m < 2)  # both SAEs, or the second
    want = context_lib.refusal_scores(ctx.model, ctx.metric, ps, 8, edit)
    numerics.assert_close(got[m], want, ulps=numerics.FORWARD_ULPS,
                          scale=max(1.0, np.abs(want).max()))
  clean = context_lib.refusal_scores(ctx.model, ctx.metric, ps, 8)
  assert np.abs(got - clean).max(1).min() > 1e-4  # every edit matters
  # Stage 4 ablates the set at both sites and looks downstream of the last.
  got = hydra.run(ctx, feats)
  want = context_lib.refusal_scores(
      ctx.model, ctx.metric, ctx.prompts['harmful_train'].subset(
          range(ctx.config.hydra.n_prompts)), 8, ctx.feature_edits(feats))
  numerics.assert_close(got['set_metric'], want.mean(),
                        ulps=numerics.FORWARD_ULPS,
                        scale=max(1.0, np.abs(want).max()))
  assert [p['hook'] for p in got['per_sae']] == ['blocks.2.hook_resid_post']


def test_a_star_in_saes_takes_the_folder_with_the_nearest_l0(tmp_path):
  for layer, l0s in ((0, (40, 61)), (1, (55, 90))):
    for l0 in l0s:
      os.makedirs(tmp_path / f'layer_{layer}' / f'average_l0_{l0}')
  config = tiny_setup.config_for(str(tmp_path))
  config.saes = (str(tmp_path / 'layer_{layer}' / 'average_l0_*'),)
  config.sae_layers = (0, 1)
  with pytest.raises(errors.ConfigError, match='sae_l0_target'):
    context_lib.space_paths(config)
  config.sae_l0_target = 59.0
  assert [os.path.basename(p) for p in context_lib.space_paths(config)] == [
      'average_l0_61', 'average_l0_55']
  config.sae_layers = (2,)
  with pytest.raises(errors.ConfigError, match='no SAE folder matches'):
    context_lib.space_paths(config)


def test_an_organism_with_sae_layers_searches_its_shipped_saes():
  from configs import dissect_organism_llama  # pylint: disable=g-import-not-at-top
  from refusal_jax.organisms import assets  # pylint: disable=g-import-not-at-top
  config = dissect_organism_llama.get_config('paper')
  _, sae_path, _ = context_lib.resolve_paths(config)
  assert sae_path == ''
  assert context_lib.space_paths(config) == [
      assets.layer_sae_path('llama', l) for l in config.sae_layers]
