"""Run in a subprocess with 8 host devices: sharded sweeps equal unsharded ones.

Usage: python sharded_sweep_check.py CHECKPOINT_DIR
Prints one JSON line: for each mesh shape, the largest difference from the
single-device result of `sae_sweep`, of `sweep` (directional ablation) and
of `feature_sweep` over SAEs at three layers.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from refusal_jax.checkpoints.load import load_model
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.parallel import mesh as mesh_lib
from refusal_jax.sae.model import SAE
from refusal_jax.sae.space import FeatureSpace
from refusal_jax.sweeps import engine
from refusal_jax.sweeps.metrics import Metric

METRIC = Metric('refusal_score', (7, 11))


def _sae(d, layer, width=40):
  k = jax.random.split(jax.random.key(layer), 4)
  return SAE(W_enc=jax.random.normal(k[0], (d, width)) * 0.4,
             b_enc=jax.random.normal(k[1], (width,)) * 0.1,
             W_dec=jax.random.normal(k[2], (width, d)) * 0.4,
             b_dec=jax.random.normal(k[3], (d,)) * 0.1,
             threshold=jnp.full((width,), 0.1), architecture='jumprelu',
             k=None, apply_b_dec_to_input=True,
             rescale_acts_by_decoder_norm=False, site='resid_post',
             layer=layer, hook_name=f'blocks.{layer}.hook_resid_post',
             model_name='tiny', neuronpedia_id=None, dtype='float32')


def _ablate(row, shared):
  del shared
  return DirectionalAblation(direction=row)


def _run(model, mesh, sae, ids, mask, candidates, masks, directions):
  chunks = engine.Chunks(masks=6, prompts=3)
  a = engine.sae_sweep(model.params, model.config, sae, ids, mask, candidates,
                       masks, metric=METRIC, chunks=chunks, mesh=mesh)
  b = engine.sweep(model.params, model.config, ids, mask, directions, _ablate,
                   metric=METRIC, start_layer=1, chunks=chunks, mesh=mesh)
  # Fewer masks than devices: the prompts are split instead.
  c = engine.sae_sweep(model.params, model.config, sae, ids, mask, candidates,
                       masks[:2], metric=METRIC, chunks=chunks, mesh=mesh)
  # SAEs at layers 0, 1 and 2, each mask over candidates of all three.
  space = FeatureSpace.of([_sae(sae.d_in, 0), sae, _sae(sae.d_in, 2)])
  features = np.concatenate([space.feature_ids(s, candidates[:4])
                             for s in range(3)])
  many = np.tile(masks[:, :4], (1, 3))
  d = engine.feature_sweep(model.params, model.config, space, ids, mask,
                           features, many, metric=METRIC, chunks=chunks,
                           mesh=mesh)
  return a, b, c, d


def main(path):
  assert len(jax.devices()) == 8, jax.devices()
  rng = np.random.RandomState(0)
  ids = rng.randint(3, 90, (5, 11)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, :4] = 0
  plain = load_model(path, tokenizer=False)
  d = plain.config.d_model
  sae = _sae(d, 1)
  candidates = np.array([1, 5, 9, 17, 30, 33, 39])
  masks = (rng.rand(13, len(candidates)) < 0.5).astype(np.float32)
  directions = rng.randn(11, d).astype(np.float32)
  ref = _run(plain, None, sae, ids, mask, candidates, masks, directions)
  out = {}
  for shape in ((8, 1, 1), (2, 2, 2), (1, 1, 8)):
    mesh = mesh_lib.make_mesh(dict(zip(mesh_lib.AXES, shape)))
    model = load_model(path, tokenizer=False, mesh=mesh)
    got = _run(model, mesh, sae, ids, mask, candidates, masks, directions)
    # errors in float32 epsilons of the reference's scale (tests/numerics.py)
    ulps = lambda g, r: float(np.abs(g - r).max() / (
        np.finfo(np.float32).eps * np.abs(r).max()))
    out[str(shape)] = dict(
        sae_err=ulps(got[0], ref[0]), direction_err=ulps(got[1], ref[1]),
        prompt_split_err=ulps(got[2], ref[2]),
        feature_space_err=ulps(got[3], ref[3]),
        shape_ok=all(g.shape == r.shape for g, r in zip(got, ref)))
  print(json.dumps(out))


if __name__ == '__main__':
  main(sys.argv[1])
