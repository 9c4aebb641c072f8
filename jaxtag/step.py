"""Pure train and eval steps (no I/O): loss, gradients, the Adam update, BatchNorm statistics.

The train state is a plain pytree ``{"params", "rest", "opt", "step", "nan_step"}``: ``params`` are the
model's ``nnx.Param`` leaves, ``rest`` its other state (BatchNorm running statistics and the dropout RNG),
``opt`` the Adam moments. The learning rate is an argument, not state, so the host-side plateau schedule
can change it without recompiling. Under ``jax.jit`` over a data-parallel mesh, BatchNorm's batch mean and
variance are taken over the *global* batch (XLA inserts the all-reduce), i.e. the statistics equal those of
one device seeing the whole batch.

NaN guard: a step whose loss or gradient norm is not finite leaves params, optimizer and BatchNorm state
unchanged and records its step number in ``nan_step`` (first one wins); the host stops the run when it sees it.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

NAN_NONE = -1


def split_model(model):
  """``(graphdef, params, rest)``: trainable parameters apart from BatchNorm statistics and RNG state."""
  return nnx.split(model, nnx.Param, ...)


def init_state(params, rest, tx) -> dict:
  return {"params": params, "rest": rest, "opt": tx.init(params),
          "step": jnp.zeros((), jnp.int32), "nan_step": jnp.full((), NAN_NONE, jnp.int32)}


def optimizer() -> optax.GradientTransformation:
  """Adam moments only; the step multiplies by ``-lr`` itself (the lr is host-controlled)."""
  return optax.scale_by_adam()


def l2_penalty(params) -> jax.Array:
  """``sum(w**2) / 2`` over conv/dense kernels only (not biases, not BatchNorm), as ``tf.nn.l2_loss``."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  total = jnp.zeros((), jnp.float32)
  for path, leaf in leaves:
    if "kernel" in (getattr(k, "key", getattr(k, "name", None)) for k in path):
      total = total + 0.5 * jnp.sum(jnp.square(leaf.astype(jnp.float32)))
  return total


_LOSSES = {   # the implementations of choices.LOSSES (the config is checked against them at start)
    "bce": lambda logits, targets: optax.sigmoid_binary_cross_entropy(logits, targets).mean(),
    "mse": lambda logits, targets: jnp.square(jax.nn.sigmoid(logits) - targets).mean(),
}


def data_loss(logits, targets, kind: str) -> jax.Array:
  return _LOSSES[kind](logits.astype(jnp.float32), targets)


def loss_and_grads(state: dict, batch: dict, *, graphdef, loss_kind: str, l2: float):
  """``((total_loss, (data_loss, new_rest)), grads)`` on a global batch (BatchNorm in training mode)."""
  def loss_fn(params, rest):   # rest is an argument so its Variables live at this trace level
    model = nnx.merge(graphdef, params, rest, copy=True)   # fresh Variables at this trace level
    logits = model(batch["audio"], train=True)
    loss = data_loss(logits, batch["targets"], loss_kind)
    return loss + l2 * l2_penalty(params), (loss, split_model(model)[2])

  return jax.value_and_grad(loss_fn, has_aux=True)(state["params"], state["rest"])


def train_step(state: dict, batch: dict, lr, *, graphdef, tx, loss_kind: str, l2: float):
  """One optimisation step on a global batch; returns ``(new_state, metrics)``."""
  (total, (loss, new_rest)), grads = loss_and_grads(state, batch, graphdef=graphdef, loss_kind=loss_kind, l2=l2)
  grad_norm = optax.global_norm(grads)
  updates, new_opt = tx.update(grads, state["opt"], state["params"])
  new_params = jax.tree.map(lambda p, u: p - lr * u.astype(p.dtype), state["params"], updates)
  finite = jnp.isfinite(total) & jnp.isfinite(grad_norm)
  updated = {"params": new_params, "rest": new_rest, "opt": new_opt}
  kept = {"params": state["params"], "rest": state["rest"], "opt": state["opt"]}
  new_state = jax.lax.cond(finite, lambda: updated, lambda: kept)   # cond: RNG keys can't go through where
  new_state["step"] = state["step"] + 1
  new_state["nan_step"] = jnp.where((state["nan_step"] == NAN_NONE) & ~finite, state["step"], state["nan_step"])
  metrics = {"loss": loss, "total_loss": total, "grad_norm": grad_norm}
  return new_state, metrics


def jit_train_step(graphdef, tx, mesh, *, loss_kind: str, l2: float):
  """The step as the trainer and the benchmarks run it: state replicated and donated, batch split along
  ``data``, learning rate a traced scalar (so the plateau schedule never recompiles)."""
  from jaxtag import sharding
  repl, data = sharding.replicated(mesh), sharding.data_sharded(mesh)
  return jax.jit(functools.partial(train_step, graphdef=graphdef, tx=tx, loss_kind=loss_kind, l2=l2),
                 in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0)


def eval_logits(params, rest, audio, *, graphdef):
  """Inference logits (BatchNorm running statistics, no dropout) as float32."""
  model = nnx.merge(graphdef, params, rest, copy=True)   # fresh Variables at this trace level
  return model(audio, train=False).astype(jnp.float32)
