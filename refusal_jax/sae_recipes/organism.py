"""An SAE on a refusal model organism's residual stream: data, training, test.

`train_organism_sae` captures the activations at `config.site` of
`config.layer` on chat sequences (prompt + response + end-of-turn) of the
organism's training examples, real tokens only (padding, and BOS when
`exclude_bos`, left out), trains an SAE with `refusal_jax.sae.train_sae`,
evaluates L0, fraction of variance explained (FVE) and dead latents on the
same kind of activations from the held-out test examples
(`refusal_jax.sae.evaluate_sae`), and writes the SAE as a SAELens folder
`workdir/sae` (in `config.store_dtype` when that is within
`config.store_tolerance` on the test activations, refusal_jax/sae/storage.py)
plus `workdir/sae_summary.json` ('test' as stored; 'storage' both ways). The config is
configs/sae_organism.py.

Axis letters: see refusal_jax/axes.py (N kept tokens, D d_model).
"""

import os
import time
from typing import Any

from absl import logging
import numpy as np

import refusal_jax
from refusal_jax.organisms import assets
from refusal_jax.organisms import data as data_lib
from refusal_jax.organisms import train
from refusal_jax.pipeline import artifacts
from refusal_jax.sae import capture
from refusal_jax.sae import storage
from refusal_jax.sae import train as sae_train


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
  skip = ()
  if exclude_bos and cfg.bos_token_id is not None:
    skip = (cfg.bos_token_id,)
  return capture.capture_tokens(
      model, [enc.ids for enc in encoded], site=site, layers=(layer,),
      batch_size=batch_size, skip_ids=skip,
      pad_to=max(len(enc.ids) for enc in encoded))[layer]


def _organism_dir(config) -> str:
  if config.organism_path:
    return config.organism_path
  return assets.organism_path(config.organism)


def train_organism_sae(config, workdir: str) -> tuple[str, dict[str, Any]]:
  """Trains, tests and writes the SAE of configs/sae_organism.py.

  Args:
    config: the SAE config.
    workdir: output directory (`sae`, `sae_summary.json`, `checkpoints`).

  Returns:
    (the SAE's folder, the summary written to sae_summary.json).

  Raises:
    errors.RefusalJaxError: a missing organism, a bad config value.
  """
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
  sae, history = sae_train.train_sae(
      train_acts, sae_train.SAETrainConfig(**config.sae.to_dict()),
      site=config.site, layer=config.layer, model_name=config.model_name,
      log_every=config.log_every,
      checkpoint_dir=os.path.join(workdir, 'checkpoints'))
  out = os.path.join(workdir, 'sae')
  dtype, stored = storage.store_sae(sae, test_acts, out, config.store_dtype,
                                    config.store_tolerance)
  summary = {
      'organism': path, 'site': config.site, 'layer': config.layer,
      'd_sae': sae.d_sae, 'architecture': sae.architecture,
      'train_tokens': int(train_acts.shape[0]),
      'train_final': history[-1],
      'test': stored[dtype], 'storage': stored,
      'seconds': time.perf_counter() - began,
      'config': config.to_dict(), 'provenance': artifacts.provenance(),
  }
  artifacts.write_json(os.path.join(workdir, 'sae_summary.json'), summary)
  return out, summary
