"""How far bf16 parameters move the pipeline's answers from float32.

`bf16_agreement` runs one SAE-ablation sweep and one batch of greedy
generations twice, with the model and SAE loaded in float32 and in bfloat16
(float32 accumulation where the port asks for it: norms, softmax, logits, SAE
pre-activations and thresholds), and reports how often the answers agree:
the sign of the refusal metric against its threshold per (prompt, mask)
pair, and the generated tokens.

It measures the shipped organisms (their prompts, refusal tokens and chat
encoding), so it is a recipe and sits in bench/, above the library; the
sweep engine it exercises stays in sweeps/.
"""

import numpy as np

from refusal_jax.checkpoints import load as load_lib
from refusal_jax.organisms import data as organism_data
from refusal_jax.organisms import behaviour
from refusal_jax.organisms import tokenizer as organism_tokenizer
from refusal_jax.sae import loaders
from refusal_jax.sweeps import engine
from refusal_jax.sweeps import metrics as metrics_lib


def bf16_agreement(model_path: str, sae_path: str, *, n_prompts: int = 64,
                   n_masks: int = 64, n_candidates: int = 64,
                   density: float = 0.3, mode: str = 'scale',
                   value: float = -1.0, new_tokens: int = 24,
                   seed: int = 0) -> dict:
  """bf16 against float32 on an organism's held-out prompts.

  Args:
    model_path: an organism checkpoint (its tokenizer supplies 'I').
    sae_path: an SAE at one of its residual sites.
    n_prompts: harmful plus harmless test prompts (half each).
    n_masks: random ablation masks.
    n_candidates: latents the masks choose from (the most active on the
      prompts, as the pipeline's candidates are).
    density: each candidate is in a mask with this probability.
    mode, value: the SAE edit (the organism configs scale by -1).
    new_tokens: greedy tokens generated per prompt.
    seed: RNG seed of the masks.

  Returns:
    {'sign_agreement': fraction of (prompt, mask) pairs whose metric falls
     on the same side of the threshold, 'n_pairs', 'max_abs_diff' and
     'mean_abs_diff' of the metric, 'metric_scale' (max |metric|),
     'token_agreement': fraction of generated tokens equal,
     'sequence_agreement': fraction of prompts generating the same tokens}
  """
  test = organism_data.make_dataset(0)['test']
  half = n_prompts // 2
  harmful = [e.instruction for e in test if e.harmful][:half]
  harmless = [e.instruction for e in test if not e.harmful][:n_prompts - half]
  runs = {}
  for dtype in ('float32', 'bfloat16'):
    model = load_lib.load_model(model_path, dtype=dtype)
    sae = loaders.load_sae(sae_path, dtype=dtype)
    ids, mask = behaviour.encode_prompts(model, harmful + harmless)
    runs[dtype] = dict(model=model, sae=sae, ids=ids, mask=mask)
  f32 = runs['float32']
  metric = metrics_lib.metric_from(
      'refusal_score', organism_tokenizer.refusal_token_ids(
          f32['model'].tokenizer))
  # candidates: the latents most active on these prompts (float32 model)
  out = f32['model'].forward(f32['ids'], f32['mask'],
                             capture=[(f32['sae'].site, f32['sae'].layer)],
                             logits_at='none')
  acts = np.asarray(f32['sae'].encode(
      out.captured[(f32['sae'].site, f32['sae'].layer)]))
  activity = acts[f32['mask'].astype(bool)].mean(0)
  candidates = np.argsort(-activity)[:n_candidates]
  rng = np.random.default_rng(seed)
  masks = (rng.random((n_masks, n_candidates)) < density).astype(np.float32)
  masks[0] = 0.0  # the unablated model is one of the conditions
  values, tokens = {}, {}
  for dtype, r in runs.items():
    values[dtype] = engine.sae_sweep(
        r['model'].params, r['model'].config, r['sae'], r['ids'], r['mask'],
        candidates, masks, metric=metric, mode=mode, value=value)
    tokens[dtype] = r['model'].generate(r['ids'], r['mask'],
                                        max_new_tokens=new_tokens)
  a, b = values['float32'], values['bfloat16']
  thr = metric.threshold_default
  same_tokens = tokens['float32'] == tokens['bfloat16']
  return dict(
      sign_agreement=float(np.mean((a < thr) == (b < thr))),
      n_pairs=int(a.size), max_abs_diff=float(np.abs(a - b).max()),
      mean_abs_diff=float(np.abs(a - b).mean()),
      metric_scale=float(np.abs(a).max()),
      token_agreement=float(same_tokens.mean()),
      sequence_agreement=float(same_tokens.all(1).mean()),
      n_prompts=len(harmful) + len(harmless), n_masks=n_masks,
      n_candidates=n_candidates, mode=mode, value=value)
