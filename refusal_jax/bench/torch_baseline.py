"""The conventional baseline: a transformers model with SAE forward hooks.

The transformers PyTorch model of the benchmark's checkpoint gets a forward
hook at each SAE's site (one hook per SAE of the benchmark) that encodes,
zero-ablates (or clamps / scales) the masked latents and decodes with the
error term kept (x + decode(edited) - decode(f)), one full forward pass per
mask with the prompts batched, the metric read from the last position of the
model's logits, as hook-based tools do.

Its float32 matmuls follow the JAX side's matmul precision
(`matmul_precision`): where JAX runs 'highest' (float32 by default), TF32 is
off in cuBLAS and cuDNN for the baseline's run and restored after it.

torch (and transformers' PyTorch model with it) is imported inside the
functions that use it: the runtime never requires torch (`make install-dev`
installs it).

Axis letters: see refusal_jax/axes.py (M masks, P prompts, A SAE latents).
"""

import contextlib
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from refusal_jax.bench import timing
from refusal_jax.bench.setup import Setup
from refusal_jax.models import sites
from refusal_jax.sae.model import SAE
from refusal_jax.sweeps import metrics as metrics_lib


@contextlib.contextmanager
def matmul_precision(precision: str):
  """torch's float32 matmul settings matching JAX's `precision`, restored after.

  'highest': no TF32 in cuBLAS or cuDNN (float32 matmuls and convolutions
  in IEEE float32); 'high': TF32 allowed in cuBLAS; anything else, such as
  'default' or 'backend default' (bfloat16 runs): torch's settings as they
  are. torch >= 2.9 is set through its `fp32_precision` settings only (it
  refuses to read a mix of those and the older `allow_tf32` flags); older
  torch through `set_float32_matmul_precision` and `allow_tf32`.

  Args:
    precision: the JAX side's matmul precision.

  Yields:
    torch's cuBLAS float32 setting inside the block ('ieee', 'tf32',
    'none'; or the older 'highest', 'high', 'medium').
  """
  import torch  # pylint: disable=g-import-not-at-top
  b = torch.backends
  if hasattr(b.cuda.matmul, 'fp32_precision'):
    settings = (b.cuda.matmul, b.cudnn, b.cudnn.conv, b.cudnn.rnn)
    saved = [s.fp32_precision for s in settings]
    try:
      if precision == 'highest':
        for setting in settings:
          setting.fp32_precision = 'ieee'
      elif precision == 'high':
        b.cuda.matmul.fp32_precision = 'tf32'
      yield b.cuda.matmul.fp32_precision
    finally:
      for setting, value in zip(settings, saved):
        setting.fp32_precision = value
    return
  saved = (torch.get_float32_matmul_precision(), b.cuda.matmul.allow_tf32,
           b.cudnn.allow_tf32)
  try:
    if precision == 'highest':
      torch.set_float32_matmul_precision('highest')
      b.cuda.matmul.allow_tf32 = b.cudnn.allow_tf32 = False
    elif precision == 'high':
      torch.set_float32_matmul_precision('high')
    yield torch.get_float32_matmul_precision()
  finally:
    torch.set_float32_matmul_precision(saved[0])
    b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32 = saved[1], saved[2]


def _torch_dtype(name: str):
  import torch  # pylint: disable=g-import-not-at-top
  return {'float32': torch.float32, 'bfloat16': torch.bfloat16}[name]


class TorchSAEHook:
  """Forward hook editing SAE latents at one decoder layer's output.

  Encodes the hooked hidden states, edits the latents where `latent_mask` [A]
  is set, and returns x + (decode(edited) - decode(f)) at real tokens (the
  reconstruction error is kept). SAE maths run in float32.
  """

  def __init__(self, sae: SAE, mode: str, value: float, device):
    import torch  # pylint: disable=g-import-not-at-top
    as_t = lambda a: torch.from_numpy(
        np.array(jnp.asarray(a, jnp.float32))).to(device)
    self.sae = sae
    self.w_enc, self.b_enc = as_t(sae.W_enc), as_t(sae.b_enc)
    self.w_dec, self.b_dec = as_t(sae.W_dec), as_t(sae.b_dec)
    self.threshold = None if sae.threshold is None else as_t(sae.threshold)
    self.dec_norms = self.w_dec.norm(dim=-1)
    self.mode, self.value = mode, value
    self.latent_mask = None  # [A] float32
    self.token_mask = None  # [B, T] float32

  def encode(self, x):
    import torch  # pylint: disable=g-import-not-at-top
    sae = self.sae
    if sae.apply_b_dec_to_input:
      x = x - self.b_dec
    pre = x @ self.w_enc + self.b_enc
    if sae.architecture == 'jumprelu':
      return torch.where(pre > self.threshold, torch.relu(pre),
                         torch.zeros_like(pre))
    if sae.architecture == 'relu':
      return torch.relu(pre)
    if sae.rescale_acts_by_decoder_norm:
      pre = pre * self.dec_norms
    values, idx = pre.topk(sae.k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, idx, torch.relu(values))

  def decode(self, f):
    if self.sae.architecture == 'topk' and self.sae.rescale_acts_by_decoder_norm:
      f = f / self.dec_norms
    return f @ self.w_dec + self.b_dec

  def __call__(self, module, args, output):
    del module, args
    hidden = output[0] if isinstance(output, tuple) else output
    x = hidden.float()
    f = self.encode(x)
    m = self.latent_mask
    if self.mode == 'zero':
      edited = f * (1.0 - m)
    elif self.mode == 'clamp':
      edited = f + m * (self.value - f)
    else:
      edited = f + m * (self.value - 1.0) * f
    delta = (self.decode(edited) - self.decode(f)) * self.token_mask[..., None]
    out = (x + delta).to(hidden.dtype)
    return (out,) + tuple(output[1:]) if isinstance(output, tuple) else out


def _torch_metric(metric: metrics_lib.Metric, logits):
  """The metric of metrics.py on torch logits [B, V] -> [B] float32."""
  import torch  # pylint: disable=g-import-not-at-top
  logits = logits.float()
  ref = torch.tensor(metric.refusal_ids, device=logits.device)
  if metric.name == 'logit_diff':
    comply = torch.tensor(metric.comply_ids, device=logits.device)
    return logits[:, ref].mean(-1) - logits[:, comply].mean(-1)
  p = torch.softmax(logits, dim=-1)[:, ref].sum(-1)
  if metric.name == 'refusal_prob':
    return p
  return torch.log(p + 1e-8) - torch.log(1 - p + 1e-8)


def time_torch(setup: Setup, config,
               precision: str = 'highest') -> dict[str, Any]:
  """The hook-based PyTorch baseline: evaluations/s and [M', P] values.

  Runs under `matmul_precision(precision)`, the JAX side's precision.
  """
  with matmul_precision(precision) as float32_matmul:
    run = _time_torch(setup, config)
  return dict(run, float32_matmul=float32_matmul)


def _time_torch(setup: Setup, config) -> dict[str, Any]:
  """`time_torch` under the matmul settings it chose."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(config.torch.get('threads') or os.cpu_count())
  device = config.torch.device
  if device == 'auto':
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
  family = setup.model.config.family
  model = transformers.AutoModelForCausalLM.from_pretrained(
      setup.checkpoint, dtype=_torch_dtype(config.dtype),
      attn_implementation='eager' if family == 'gemma2' else 'sdpa').to(
          device).eval()
  n = config.torch.n_masks or setup.masks.shape[0]
  masks = setup.masks[:n]
  sae_of = setup.space.locate(setup.features)[0]
  hooks, handles, dense = [], [], []
  for s, sae in enumerate(setup.space.saes):
    hooks.append(TorchSAEHook(sae, config.sweep.mode, config.sweep.value,
                              device))
    if sae.site == sites.RESID_POST:
      module = model.model.layers[sae.layer]
    elif sae.layer > 0:
      module = model.model.layers[sae.layer - 1]
    else:
      module = model.model.embed_tokens
    handles.append(module.register_forward_hook(hooks[-1]))
    dense.append(np.zeros((n, sae.d_sae), np.float32))  # [M', A] per SAE
    dense[-1][:, setup.candidates[sae_of == s]] = masks[:, sae_of == s]
  batch = config.torch.batch_prompts
  ids = torch.from_numpy(setup.input_ids.astype(np.int64)).to(device)
  attn = torch.from_numpy(setup.attention_mask.astype(np.int64)).to(device)
  positions = (attn.cumsum(-1) - 1).clamp(min=0)
  last = (torch.arange(ids.shape[1], device=device)[None] * attn).argmax(-1)

  def evaluate(rows):
    out = np.zeros((len(rows), ids.shape[0]), np.float32)
    with torch.inference_mode():
      for i, row in enumerate(rows):
        for hook, d in zip(hooks, dense):
          hook.latent_mask = torch.from_numpy(d[row]).to(device)
        for p0 in range(0, ids.shape[0], batch):
          sl = slice(p0, p0 + batch)
          for hook in hooks:
            hook.token_mask = attn[sl].float()
          logits = model(input_ids=ids[sl], attention_mask=attn[sl],
                         position_ids=positions[sl]).logits
          rows_last = logits[torch.arange(logits.shape[0]), last[sl]]
          out[i, sl] = _torch_metric(setup.metric, rows_last).cpu().numpy()
    return out

  try:
    evaluate([0])  # warm-up, not timed
    seconds, values = timing.timed(lambda: evaluate(list(range(n))))
  finally:
    for handle in handles:
      handle.remove()
  return dict(seconds=seconds, evals_per_s=n * ids.shape[0] / seconds,
              values=values, n_masks=n, device=device,
              threads=torch.get_num_threads())
