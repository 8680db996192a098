"""An organism from its config: training, then its direction and behaviour.

`build_organism` trains (or resumes training of) an organism with
`train.train_organism`, then, unless told not to, selects its refusal
direction and measures its held-out behaviour with
`behaviour.evaluate_organism` and writes `workdir/behaviour.json`.
"""

import os
import time
from typing import Any

import ml_collections

from refusal_jax.organisms import behaviour
from refusal_jax.organisms import train
from refusal_jax.pipeline import artifacts


def build_organism(config: ml_collections.ConfigDict, workdir: str, *,
                   evaluate: bool = True
                   ) -> tuple[str, dict[str, Any] | None]:
  """Trains an organism, then selects its direction and measures it.

  Args:
    config: the organism config (configs/organism_<name>.py).
    workdir: output directory; `workdir/export` is the checkpoint (with its
      tokenizer and, after the evaluation, `refusal_direction.json`),
      `workdir/train_summary.json` the training summary and
      `workdir/behaviour.json` the measured behaviour.
    evaluate: select the direction and measure the behaviour after training.

  Returns:
    (the export directory, the dict written to behaviour.json or None when
    `evaluate` is False).

  Raises:
    errors.RefusalJaxError: a bad config value.
  """
  export_dir = train.train_organism(config, workdir)
  if not evaluate:
    return export_dir, None
  began = time.perf_counter()
  result = behaviour.evaluate_organism(export_dir, config)
  result['eval_seconds'] = time.perf_counter() - began
  result['config'] = config.to_dict()
  result['provenance'] = artifacts.provenance()
  artifacts.write_json(os.path.join(workdir, 'behaviour.json'), result)
  return export_dir, result
