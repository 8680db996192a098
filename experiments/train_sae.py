"""Trains an SAE on a refusal model organism's residual stream.

  python -m experiments.train_sae --config=configs/sae_organism.py:llama \
      --workdir=workdir/sae_organism_llama

Captures the activations at `config.site` of `config.layer` on chat sequences
(prompt + response + end-of-turn) of the organism's training examples, real
tokens only (padding, and BOS when `exclude_bos`, left out), trains an SAE with
`refusal_jax.sae.train_sae`, evaluates L0, fraction of variance explained
(FVE) and dead latents on the same kind of activations from the held-out test
examples, and writes the SAE as a SAELens folder `workdir/sae` plus
`workdir/sae_summary.json`.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

import refusal_jax
from refusal_jax import errors
from refusal_jax import sae as sae_lib
from refusal_jax.models import transformer
from refusal_jax.organisms import assets
from refusal_jax.organisms import data as data_lib
from refusal_jax.organisms import train
from refusal_jax.pipeline import artifacts

_CONFIG = config_flags.DEFINE_config_file('config', None, 'SAE config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
flags.mark_flags_as_required(['config', 'workdir'])


def _capture(params, cfg, ids, mask, *, site, layer):
  """Activations [B, T, D] at (site, layer) of right-padded rows."""
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1], dtype=jnp.int32),
                               ids.shape)
  out = transformer.forward(params, cfg, ids, attention_mask=mask,
                            positions=positions, capture=[(site, layer)],
                            stop_layer=layer + 1)
  return out.captured[(site, layer)].astype(jnp.float32)


_capture_jit = jax.jit(_capture, static_argnames=('cfg', 'site', 'layer'))


def capture_activations(model, examples, *, site: str, layer: int,
                        batch_size: int, exclude_bos: bool) -> np.ndarray:
  """Activations [N, D] at every real token of the examples' chat sequences.

  Args:
    model: the organism.
    examples: chat examples; each is encoded as prompt + response +
      end-of-turn, exactly as in training.
    site: residual-stream site.
    layer: layer index.
    batch_size: sequences per forward pass.
    exclude_bos: leave out the BOS token's activation.

  Returns:
    float32 [N, D], N = number of kept tokens.
  """
  cfg = model.config
  encoded = train.encode_examples(
      model.tokenizer, examples, style=train.tokenizer_style(cfg.family),
      bos_id=cfg.bos_token_id)
  t = max(len(enc.ids) for enc in encoded)
  chunks = []
  for start in range(0, len(encoded), batch_size):
    rows = encoded[start:start + batch_size]
    ids = np.full((batch_size, t), cfg.pad_token_id, np.int32)
    mask = np.zeros((batch_size, t), np.int32)
    for r, enc in enumerate(rows):
      ids[r, :len(enc.ids)] = enc.ids
      mask[r, :len(enc.ids)] = 1
    keep = mask.astype(bool)
    if exclude_bos and cfg.bos_token_id is not None:
      keep &= ids != cfg.bos_token_id
    acts = np.asarray(_capture_jit(model.params, cfg, ids, mask, site=site,
                                   layer=layer))
    chunks.append(acts[keep])
  return np.concatenate(chunks)


def evaluate_sae(sae, acts: np.ndarray, batch_size: int = 8192
                 ) -> dict[str, float]:
  """L0, FVE and never-firing latents of `sae` on activations [N, D].

  FVE = 1 - sum ||x - x_hat||^2 / sum ||x - mean x||^2 over all rows.
  """
  sse, l0, fired = 0.0, 0.0, np.zeros(sae.d_sae, bool)
  for start in range(0, acts.shape[0], batch_size):
    x = jnp.asarray(acts[start:start + batch_size])
    f = sae.encode(x)
    x_hat = sae.decode(f)
    sse += float(jnp.sum(jnp.square(x - x_hat)))
    l0 += float(jnp.sum(f > 0))
    fired |= np.asarray(jnp.any(f > 0, axis=0))
  sst = float(np.sum(np.square(acts - acts.mean(axis=0))))
  return {'l0': l0 / acts.shape[0], 'fve': 1.0 - sse / sst,
          'dead_latents': int((~fired).sum()), 'n_tokens': int(acts.shape[0])}


def _organism_dir(config) -> str:
  if config.organism_path:
    return config.organism_path
  return assets.organism_path(config.organism)


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    began = time.perf_counter()
    path = _organism_dir(config)
    model = refusal_jax.load_model(path)
    dataset = data_lib.make_dataset(
        config.data.seed, config.data.n_per_split.to_dict(),
        train_harmful_fraction=config.data.train_harmful_fraction,
        sure_share=config.data.sure_share)
    kw = dict(site=config.site, layer=config.layer,
              batch_size=config.data.batch_size,
              exclude_bos=config.data.exclude_bos)
    train_acts = capture_activations(model, dataset['train'], **kw)
    test_acts = capture_activations(model, dataset['test'], **kw)
    logging.info('captured %d train and %d test activations at %s layer %d',
                 train_acts.shape[0], test_acts.shape[0], config.site,
                 config.layer)
    sae, history = sae_lib.train_sae(
        train_acts, sae_lib.SAETrainConfig(**config.sae.to_dict()),
        site=config.site, layer=config.layer, model_name=config.model_name,
        log_every=config.log_every,
        checkpoint_dir=os.path.join(_WORKDIR.value, 'checkpoints'))
    out = sae_lib.save_sae(sae, os.path.join(_WORKDIR.value, 'sae'),
                           overwrite=True)
    summary = {
        'organism': path, 'site': config.site, 'layer': config.layer,
        'd_sae': sae.d_sae, 'architecture': sae.architecture,
        'train_tokens': int(train_acts.shape[0]),
        'train_final': history[-1], 'test': evaluate_sae(sae, test_acts),
        'seconds': time.perf_counter() - began,
        'config': config.to_dict(), 'provenance': artifacts.provenance(),
    }
    artifacts.write_json(os.path.join(_WORKDIR.value, 'sae_summary.json'),
                         summary)
    logging.info('SAE written to %s: %s', out, json.dumps(summary))
  except errors.RefusalJaxError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
