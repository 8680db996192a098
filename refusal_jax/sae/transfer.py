"""A warning when an SAE of a base model is applied to its instruct model late.

SAEs trained on a base model reconstruct its chat (instruction-tuned)
model's middle-layer residual stream about as well as the base model's
(Kissane et al. 2024, "SAEs (usually) transfer between base and chat
models", who also find they fail on outlier-norm tokens such as BOS; the
Gemma Scope report measures its base SAEs on Gemma 2 2B IT layer by layer),
but are known not to transfer at the last layers. There, latent edits and
statistics rest on a poor reconstruction, so `warn_base_saes_on_instruct`
says so, once.

Names are read as Hugging Face model names or paths: an instruct model's name
has a '-it', '-instruct' or '-chat' part ('gemma-2-2b-it',
'meta-llama/Llama-3.1-8B-Instruct'); an SAE whose `model_name` has none (and
is not empty) was trained on a base model ('google/gemma-2-2b',
'meta-llama/Llama-3.1-8B').
"""

import re
from typing import Sequence

from absl import logging

from refusal_jax.sae.model import SAE

# "Last layers": the last quarter of the decoder layers, i.e. layers
# >= (1 - 0.25) * num_layers (Gemma-2-2B's 26 layers: 20-25; Llama-3.1-8B's
# 32: 24-31). The paper's SAEs (Gemma layer 16, Llama layer 13) are before it.
LAST_LAYERS_FRACTION = 0.25

_INSTRUCT = re.compile(r'[-_](it|instruct|chat)(?=$|[-_./])', re.IGNORECASE)
_warned: set[tuple[str, tuple[str, ...]]] = set()


def is_instruct_name(name: str | None) -> bool:
  """Whether a model name or path names an instruction-tuned model."""
  return bool(name) and _INSTRUCT.search(str(name)) is not None


def in_last_layers(layer: int, num_layers: int) -> bool:
  """Whether `layer` is in the last LAST_LAYERS_FRACTION of the model."""
  return layer >= num_layers * (1.0 - LAST_LAYERS_FRACTION)


def base_saes_on_instruct(saes: Sequence[SAE], model_name: str | None,
                          num_layers: int) -> list[SAE]:
  """The SAEs trained on a base model that sit in the instruct model's last
  layers (none when `model_name` is not an instruct model's)."""
  if not is_instruct_name(model_name):
    return []
  return [s for s in saes if s.model_name and not is_instruct_name(
      s.model_name) and in_last_layers(s.layer, num_layers)]


def warn_base_saes_on_instruct(saes: Sequence[SAE], model_name: str | None,
                               num_layers: int) -> str | None:
  """Logs one warning for base-model SAEs in an instruct model's last layers.

  The warning is logged once per process for a given model and set of SAEs
  (a run calls this once, when it loads them).

  Args:
    saes: the SAEs the run applies.
    model_name: the model's name or path (e.g. config.model_path).
    num_layers: the model's decoder layers.

  Returns:
    The warning's text, or None when no SAE is concerned.
  """
  late = base_saes_on_instruct(saes, model_name, num_layers)
  if not late:
    return None
  bases = ', '.join(sorted({s.model_name for s in late}))
  text = (
      f'SAE(s) trained on the base model ({bases}) applied to the instruct '
      f'model {model_name} at '
      f'{", ".join(s.hook_name for s in late)}, in its last '
      f'{LAST_LAYERS_FRACTION:.0%} of {num_layers} layers, where base SAEs '
      'are known not to transfer: check the reconstruction error '
      '(report.html has the searched SAE\'s) or use an SAE trained on the '
      'instruct model')
  key = (str(model_name), tuple(s.hook_name for s in late))
  if key not in _warned:
    _warned.add(key)
    logging.warning('%s', text)
  return text
