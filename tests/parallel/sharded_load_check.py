"""Run in a subprocess with 8 host devices: sharded loading equals plain loading.

Usage: python sharded_load_check.py CHECKPOINT_DIR
Prints one JSON line with the results.
"""

import json
import sys

import jax
import numpy as np
from flax import nnx

from refusal_jax.checkpoints.load import load_model
from refusal_jax.parallel import mesh as mesh_lib


def main(path):
  assert len(jax.devices()) == 8, jax.devices()
  plain = load_model(path, tokenizer=False)
  ids = np.random.RandomState(0).randint(3, 90, (4, 11))
  ref = np.asarray(plain.forward(ids).logits)
  out = {}
  for shape in ((8, 1, 1), (2, 2, 2), (1, 1, 8), (1, 8, 1)):
    mesh = mesh_lib.make_mesh(dict(zip(mesh_lib.AXES, shape)))
    model = load_model(path, tokenizer=False, mesh=mesh)
    want = mesh_lib.param_shardings(model.params, mesh)
    ok = all(var[...].sharding.is_equivalent_to(want[p], var[...].ndim)
             for p, var in nnx.to_flat_state(model.params))
    q = nnx.to_flat_state(model.params)
    q_spec = [v[...].sharding.spec for p, v in q if p[-1] == 'q_proj'][0]
    # error in float32 epsilons of the logits' scale (tests/numerics.py)
    err = float(np.abs(np.asarray(model.forward(ids).logits) - ref).max() / (
        np.finfo(np.float32).eps * np.abs(ref).max()))
    out[str(shape)] = dict(shardings_match=ok, err=err, q_spec=list(q_spec))
  print(json.dumps(out))


if __name__ == '__main__':
  main(sys.argv[1])
