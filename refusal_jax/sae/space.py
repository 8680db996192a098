"""One feature space over the latents of many SAEs.

The paper searches SAEs at every layer up to the refusal layer, so a feature
is a (SAE, latent) pair. `FeatureSpace` holds SAEs at distinct (site, layer)
pairs in forward-pass order (by layer, then site in models/sites.py's order)
and numbers their latents consecutively: latent a of SAE s is feature
`offsets[s] + a`. A list of features is then a list of ints, as for one SAE
(where feature and latent coincide), and splits back into per-SAE latents
with `locate`.

Axis letters: see refusal_jax/axes.py (A = SAE latents, C = features of a
candidate list).
"""

import dataclasses
from typing import Sequence

import numpy as np

from refusal_jax import errors
from refusal_jax.models import sites
from refusal_jax.sae.model import SAE


def pass_order(sae: SAE) -> tuple[int, int]:
  """(layer, site index): where the forward pass reaches the SAE's site."""
  return sae.layer, sites.SITES.index(sae.site)


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureSpace:
  """SAEs at distinct sites whose latents are numbered as one space.

  Attributes:
    saes: the SAEs in forward-pass order (`pass_order`).
  """
  saes: tuple[SAE, ...]

  def __post_init__(self):
    if not self.saes:
      raise errors.ConfigError('a feature space needs at least one SAE')
    keys = [pass_order(s) for s in self.saes]
    if keys != sorted(keys) or len(set(keys)) != len(keys):
      raise errors.ConfigError(
          'feature space SAEs must be at distinct sites in forward-pass '
          f"order; got {[s.hook_name for s in self.saes]} (use "
          'FeatureSpace.of)')

  @classmethod
  def of(cls, saes: Sequence[SAE]) -> 'FeatureSpace':
    """The space of `saes`, sorted into forward-pass order."""
    return cls(tuple(sorted(saes, key=pass_order)))

  @property
  def offsets(self) -> np.ndarray:
    """[S + 1] int64: SAE s's latents are features offsets[s]..[s + 1]."""
    return np.concatenate([[0], np.cumsum([s.d_sae for s in self.saes])])

  @property
  def size(self) -> int:
    """Number of features (sum of the SAEs' widths)."""
    return int(self.offsets[-1])

  def feature_ids(self, sae_index: int, latents) -> np.ndarray:
    """[C] features of latents [C] of SAE `sae_index`."""
    return self.offsets[sae_index] + np.asarray(latents, np.int64)

  def locate(self, features) -> tuple[np.ndarray, np.ndarray]:
    """(SAE index [C], latent [C]) of features [C].

    Raises:
      errors.ConfigError: a feature outside [0, size).
    """
    f = np.asarray(features, np.int64).reshape(-1)
    if f.size and (f.min() < 0 or f.max() >= self.size):
      raise errors.ConfigError(
          f'feature {int(f.max()) if f.max() >= self.size else int(f.min())}'
          f' is outside the feature space of {self.size} latents')
    s = np.searchsorted(self.offsets, f, side='right') - 1
    return s, f - self.offsets[s]

  def label(self, feature: int) -> str:
    """'<hook name>/<latent>' of one feature."""
    s, a = self.locate([feature])
    return f'{self.saes[int(s[0])].hook_name}/{int(a[0])}'
