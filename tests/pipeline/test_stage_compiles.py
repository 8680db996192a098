"""Stages 3 (both modes), 4 and 5 compile as often at every size.

Two tiny setups, the second with more layers, more SAEs in its feature
space (4 instead of 2), more features, and more prompts than a batch (a
ragged last batch), run each stage after `jax.clear_caches()` and record the
same `n_compiles`: batches are padded to one shape, the prompt sets a stage
generates on to one width, mask blocks to one size, and every SAE of the
space is edited (or read) in one pass, so that no count grows with the
sizes.
"""

import os

import jax
import numpy as np
import pytest

import tiny_setup
from refusal_jax.pipeline import context as context_lib
from refusal_jax.pipeline import evaluation
from refusal_jax.pipeline import hydra
from refusal_jax.pipeline import interactions
from refusal_jax.pipeline import judging
from refusal_jax.pipeline import stage_stats
from refusal_jax.pipeline.paper import stages as paper_stages
from refusal_jax.sae import load_sae, save_sae

# (layers, SAEs of the feature space (layers 0..n-1), prompts per split,
#  features of the stage-2 set)
SIZES = ((3, 2, 3, 4), (5, 4, 9, 11))


def _config(root, layers, n_saes, n_prompts):
  config = tiny_setup.build(root, num_layers=layers)
  sae = tiny_setup.sae_at
  for layer in range(2, n_saes):  # build() writes the SAEs of layers 0, 1
    save_sae(sae(layer, 10 + layer), os.path.join(root, f'sae{layer}'))
  config = tiny_setup.use_layer_saes(config, root, tuple(range(n_saes)), 4)
  config.hydra_sae_paths = ()
  config.data.n_train, config.data.n_val, config.data.n_test = (
      n_prompts, 3, n_prompts)
  config.fm.n_prompts = config.eval.n_ce_prompts = n_prompts
  config.fm.n_masks, config.fm.steps = 3 * n_prompts + 1, 20
  config.chunks.masks, config.chunks.prompts = 4, 4
  config.eval.batch_size = 4
  config.eval.max_new_tokens = config.eval.ce_max_new_tokens = 3
  config.paper.top_k.n_points = 2
  config.paper.classifier.epochs = 2
  config.paper.controls.update(n_draws=1, min_tokens=(1,))
  return config


@pytest.fixture(scope='module')
def setups(tmp_path_factory):
  out = []
  for i, (layers, n_saes, n_prompts, n_feats) in enumerate(SIZES):
    config = _config(str(tmp_path_factory.mktemp(f'compiles{i}')), layers,
                     n_saes, n_prompts)
    ctx = context_lib.build_context(config)
    rng = np.random.default_rng(i)
    feats = sorted(rng.choice(ctx.space.size, n_feats, False).tolist())
    out.append((ctx, feats))
  return out


def _compiles(fn):
  jax.clear_caches()
  with stage_stats.StageMeter() as meter:
    out = fn()
  return meter.stats['n_compiles'], out


def _check(counts, setups):
  ctxs = [ctx for ctx, _ in setups]
  # the second size really is larger
  assert [len(c.space.saes) for c in ctxs] == [s[1] for s in SIZES]
  assert len(ctxs[1].prompts['harmful_test']) > ctxs[1].chunks.prompts
  assert counts[0] == counts[1], counts


def test_stage3_compiles_as_often_at_every_size(setups):
  counts = []
  for ctx, feats in setups:
    n, (summary, _) = _compiles(
        lambda ctx=ctx, feats=feats: interactions.run(ctx, feats))
    assert summary['n_masks'] == ctx.config.fm.n_masks
    counts.append(n)
  _check(counts, setups)


def test_paper_stage3_compiles_as_often_at_every_size(setups):
  counts = []
  for ctx, feats in setups:
    ctx.config.mode = 'paper'
    try:
      n, (summary, _) = _compiles(
          lambda ctx=ctx, feats=feats: paper_stages.run_interactions(
              ctx, feats))
    finally:
      ctx.config.mode = 'current'
    assert summary['n_pool'] > len(feats)
    counts.append(n)
  _check(counts, setups)


def test_evaluation_compiles_as_often_at_every_size(setups):
  counts = []
  for ctx, feats in setups:
    direction = np.random.default_rng(0).normal(
        size=ctx.model.config.d_model).astype(np.float32)
    sets = {'stage2': feats, 'fm': feats[:2], 'linear_probe': feats[-3:]}

    def run(ctx=ctx, direction=direction, sets=sets):
      with judging.ModelJudge(ctx) as judge:
        return evaluation.run(ctx, direction, sets, None, judge)

    n, (summary, _) = _compiles(run)
    assert summary['n_harmful_test'] == len(ctx.prompts['harmful_test'])
    counts.append(n)
  _check(counts, setups)


def test_hydra_compiles_as_often_at_every_size(setups):
  counts = []
  for (ctx, feats), (_, n_saes, _, _) in zip(setups, SIZES):
    root = os.path.dirname(ctx.config.model_path)
    path = os.path.join(root, f'sae{n_saes}')  # after the space's last SAE
    save_sae(tiny_setup.sae_at(n_saes, 20), path)
    saved = ctx.hydra_saes, ctx.config.hydra.eps
    ctx.hydra_saes = [load_sae(path)]
    # every dormant latent counts as awakened: both sizes sweep their
    # candidates (up to hydra.max_candidates)
    ctx.config.hydra.eps = -1.0
    try:
      n, summary = _compiles(
          lambda ctx=ctx, feats=feats: hydra.run(ctx, feats))
    finally:
      ctx.hydra_saes, ctx.config.hydra.eps = saved
    assert summary['per_sae'][0]['hook'] == f'blocks.{n_saes}.hook_resid_post'
    assert summary['n_awakened'] == ctx.config.hydra.max_candidates
    counts.append(n)
  _check(counts, setups)
