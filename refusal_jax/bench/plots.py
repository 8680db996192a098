"""Engine throughput curves and the benchmark's throughput.png.

`throughput_curves` measures the engine's evaluations/s against the number of
masks and against the edited layer; `plot` draws them next to the PyTorch
baseline. matplotlib is imported inside `plot` (a dev dependency).
"""

from typing import Any

import numpy as np

from refusal_jax import errors
from refusal_jax.bench import timing
from refusal_jax.bench.setup import Setup
from refusal_jax.models import sites


def throughput_curves(setup: Setup, config) -> dict[str, list]:
  """Engine evaluations/s against the number of masks and the edited layer."""
  n_prompts = setup.input_ids.shape[0]
  by_masks = []
  for m in config.plot.n_masks:
    if not 0 < m:
      raise errors.ConfigError(f'plot.n_masks has {m}; must be positive')
    rng = np.random.default_rng(config.seed + m)
    masks = (rng.random((m, setup.masks.shape[1]))
             < config.sweep.mask_density).astype(np.float32)
    timing.sweep(setup, config, masks=masks)  # compile
    seconds, _ = timing.timed(lambda: timing.sweep(setup, config, masks=masks))
    by_masks.append([m, m * n_prompts / seconds])
  by_layer = []
  masks = setup.masks[:min(config.sweep.chunk_masks, setup.masks.shape[0])]
  if config.plot.layers and len(setup.space.saes) > 1:
    raise errors.ConfigError(
        'plot.layers moves one SAE across layers; set plot.layers=() with '
        'sae.layers')
  for layer in config.plot.layers:
    if not 0 <= layer < setup.model.config.num_layers:
      raise errors.ConfigError(
          f'plot.layers has {layer}, outside the model\'s layers [0, '
          f'{setup.model.config.num_layers})')
    sae = setup.sae.replace(site=sites.RESID_POST, layer=layer,
                            hook_name=sites.hook_name(sites.RESID_POST, layer))
    timing.sweep(setup, config, sae=sae, masks=masks)  # compile
    seconds, _ = timing.timed(
        lambda: timing.sweep(setup, config, sae=sae, masks=masks))
    by_layer.append([layer, len(masks) * n_prompts / seconds])
  return dict(by_masks=by_masks, by_layer=by_layer)


def plot(curves: dict[str, list], result: dict[str, Any], path: str) -> None:
  """Writes the two throughput panels to `path` (PNG)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  title = (f"{result['model']}, {result['dtype']}, {result['device']}, "
           f"{result['n_prompts']} prompts x {result['n_tokens']} tokens")
  if curves['by_masks']:
    m, e = zip(*curves['by_masks'])
    axes[0].plot(m, e, 'o-', label='engine')
    axes[0].axhline(result['torch_evals_per_s'], color='C3', ls='--',
                    label='PyTorch hooks')
    axes[0].set_xscale('log', base=2)
    axes[0].set_xlabel('masks')
    axes[0].set_ylabel('evaluations / s')
    axes[0].set_title(f"edit at layer {result['layer']}")
    axes[0].legend()
  if curves['by_layer']:
    layers, e = zip(*curves['by_layer'])
    axes[1].plot(layers, e, 'o-')
    axes[1].set_xlabel('edited layer (resid_post)')
    axes[1].set_ylabel('evaluations / s')
    axes[1].set_title(f"{result['profile_chunk']} masks per point")
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
