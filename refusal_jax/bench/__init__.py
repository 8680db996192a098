"""The ablation-throughput benchmark: the sweep engine against PyTorch hooks.

* `setup`: the model, SAE, prompts, candidates and masks both frameworks
  evaluate (random ones from a shape, or a shipped checkpoint and SAE);
* `timing`: the engine's compile time and warm evaluations/s;
* `torch_baseline`: the transformers model with an SAE forward hook;
* `profile`: the engine's time per stage of one chunk;
* `plots`: throughput against the number of masks and the edited layer;
* `precision`: `bf16_agreement`, how far bf16 parameters move an
  organism's sweep values and generations from float32 (not imported here);
* `run`: `run_benchmark`, all of the above plus the roofline
  (`sweeps/roofline.py`), written to benchmark.json and throughput.png.

torch, transformers and matplotlib are imported only inside the functions
that use them.
"""

from refusal_jax.bench.run import KEYS
from refusal_jax.bench.run import run_benchmark

__all__ = ['KEYS', 'run_benchmark']
