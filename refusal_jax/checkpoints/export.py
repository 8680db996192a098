"""Writing parameters as a transformers checkpoint directory.

The result (config.json, generation_config.json, model.safetensors and, when
given, the tokenizer files) loads with both `transformers.AutoModelForCausalLM`
and `refusal_jax.load_model`. Files are written to a temporary directory next
to the target and renamed into place, so an interrupted export leaves nothing
half-written.
"""

import json
import os

import numpy as np
from safetensors.numpy import save_file

from refusal_jax import atomic
from refusal_jax.checkpoints import load as load_lib
from refusal_jax.models import config as config_lib


def save_hf_checkpoint(params, config: config_lib.ModelConfig, path: str, *,
                       tokenizer=None) -> str:
  """Exports `params` to `path` in the transformers format (float32).

  Args:
    params: model parameters.
    config: their architecture.
    path: target directory; replaced if it exists.
    tokenizer: optional transformers tokenizer to save alongside.

  Returns:
    The target path.
  """
  path = os.path.abspath(path)
  with atomic.directory(path) as tmp:
    tensors = {k: np.ascontiguousarray(np.asarray(v, np.float32))
               for k, v in load_lib.export_params(params, config).items()}
    save_file(tensors, os.path.join(tmp, 'model.safetensors'),
              metadata={'format': 'pt'})
    hf = config_lib.to_hf_config(config)
    hf['dtype'] = 'float32'
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
      json.dump(hf, f, indent=2, sort_keys=True)
    gen = {'bos_token_id': hf['bos_token_id'], 'eos_token_id':
           hf['eos_token_id'], 'pad_token_id': hf['pad_token_id'],
           'do_sample': False}
    with open(os.path.join(tmp, 'generation_config.json'), 'w') as f:
      json.dump(gen, f, indent=2)
    if tokenizer is not None:
      tokenizer.save_pretrained(tmp)
  return path
