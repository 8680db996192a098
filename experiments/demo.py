"""`make demo`: a small end-to-end job on the embedded default.

Builds a chat tokenizer and a small Llama-architecture decoder, exports it as a
transformers checkpoint, loads it back with `refusal_jax.load_model`, and runs
batched greedy generation on harmful and harmless chat prompts with and without
a difference-in-means direction ablated. Writes `summary.json` to --workdir.
"""

import json
import os
import time

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np

import refusal_jax
from refusal_jax.checkpoints import export
from refusal_jax.data import chat
from refusal_jax.interventions.directions import DirectionalAblation
from refusal_jax.models import transformer
from refusal_jax.models.config import ModelConfig
from refusal_jax.organisms import data as organism_data
from refusal_jax.organisms import tokenizer as organism_tokenizer

_WORKDIR = flags.DEFINE_string('workdir', 'workdir/demo', 'Output directory.')


def main(argv):
  del argv
  start = time.time()
  os.makedirs(_WORKDIR.value, exist_ok=True)
  splits = organism_data.make_dataset(seed=0, n_per_split=dict(
      train=400, val=40, test=40))
  tok = organism_tokenizer.train_tokenizer(
      organism_data.corpus_text(splits['train']), style='llama3',
      vocab_size=512)
  cfg = ModelConfig.llama(
      vocab_size=len(tok), d_model=64, num_layers=2, num_heads=4,
      num_kv_heads=2, mlp_dim=128, max_position_embeddings=256,
      bos_token_id=tok.bos_token_id,
      eos_token_ids=tuple(organism_tokenizer.stop_token_ids(tok)),
      pad_token_id=tok.pad_token_id)
  ckpt = export.save_hf_checkpoint(transformer.init_params(cfg), cfg,
                                   os.path.join(_WORKDIR.value, 'model'),
                                   tokenizer=tok)
  model = refusal_jax.load_model(ckpt)
  test = splits['test']
  harmful = [e.instruction for e in test if e.harmful][:8]
  harmless = [e.instruction for e in test if not e.harmful][:8]
  ids, mask = chat.encode_chat(model.tokenizer, harmful + harmless,
                               bos_id=cfg.bos_token_id)
  acts = model.forward(ids, mask, capture=[('resid_pre', 1)],
                       capture_positions=np.full((len(ids), 1), ids.shape[1] - 1),
                       logits_at='none').captured[('resid_pre', 1)][:, 0]
  direction = acts[:8].mean(0) - acts[8:].mean(0)
  clean = model.generate(ids, mask, max_new_tokens=8)
  ablated = model.generate(ids, mask, max_new_tokens=8,
                           interventions=DirectionalAblation(direction))
  summary = dict(
      model=ckpt, n_prompts=len(ids),
      direction_norm=float(jnp.linalg.norm(direction)),
      changed_generations=int((clean != ablated).any(axis=1).sum()),
      example=model.tokenizer.decode(clean[0]),
      seconds=round(time.time() - start, 1))
  path = os.path.join(_WORKDIR.value, 'summary.json')
  with open(path, 'w') as f:
    json.dump(summary, f, indent=2)
  print(json.dumps(summary, indent=2))
  print(f'results: {path}')


if __name__ == '__main__':
  app.run(main)
