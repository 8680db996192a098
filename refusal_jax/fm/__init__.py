"""Second-order factorization machines (Rendle 2010) trained with Optax."""

from refusal_jax.fm.model import greedy_set, marginal_effects, predict
from refusal_jax.fm.train import FitResult, fit
