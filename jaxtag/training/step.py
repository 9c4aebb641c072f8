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


def optimizer(labels=None, *, backbone_lr_scale: float = 1.0) -> optax.GradientTransformation:
  """Adam moments only; the step multiplies by ``-lr`` itself (the lr is host-controlled).

  ``labels`` (a pytree like the params of ``"head"`` / ``"backbone"`` / ``"frozen"``, or a function of the
  params returning one, see ``jaxtag.training.trainable``): the head gets Adam, the backbone Adam scaled by ``backbone_lr_scale``, frozen leaves
  ``set_to_zero`` (no moments allocated, update exactly 0)."""
  if labels is None:
    return optax.scale_by_adam()
  backbone = optax.scale_by_adam()
  if backbone_lr_scale != 1.0:
    backbone = optax.chain(backbone, optax.scale(float(backbone_lr_scale)))
  return optax.multi_transform(
      {"head": optax.scale_by_adam(), "backbone": backbone, "frozen": optax.set_to_zero()}, labels)


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


def loss_and_grads(state: dict, batch: dict, *, graphdef, loss_kind: str, l2: float, frozen=None, augment=None):
  """``((total_loss, (data_loss, new_rest)), grads)`` on a global batch (BatchNorm in training mode).

  ``frozen``: a pytree of bools like the params; those leaves get a stopped gradient (exactly zero), so XLA
  prunes the backward pass below the lowest trainable layer. ``augment``: a ``jaxtag.training.augment.Augment`` (or
  None): the batch is augmented on the device with the key of ``state["step"]``."""
  from jaxtag.training import augment as augment_lib
  key = None
  if augment is not None:
    key = augment_lib.step_key(augment, state["step"])
    audio, targets = augment_lib.waveform(augment, key, batch["audio"], batch["targets"])
    batch = {**batch, "audio": audio, "targets": targets}

  def loss_fn(params, rest):   # rest is an argument so its Variables live at this trace level
    if frozen is not None:
      params = jax.tree.map(lambda p, f: jax.lax.stop_gradient(p) if f else p, params, frozen)
    model = nnx.merge(graphdef, params, rest, copy=True)   # fresh Variables at this trace level
    with augment_lib.on_logmel(augment, key):   # SpecAugment masks in mel front-ends (training only)
      logits = model(batch["audio"], train=True)
    loss = data_loss(logits, batch["targets"], loss_kind)
    return loss + l2 * l2_penalty(params), (loss, split_model(model)[2])

  return jax.value_and_grad(loss_fn, has_aux=True)(state["params"], state["rest"])


def train_step(state: dict, batch: dict, lr, *, graphdef, tx, loss_kind: str, l2: float, frozen=None,
               augment=None):
  """One optimisation step on a global batch; returns ``(new_state, metrics)``."""
  (total, (loss, new_rest)), grads = loss_and_grads(state, batch, graphdef=graphdef, loss_kind=loss_kind, l2=l2,
                                                    frozen=frozen, augment=augment)
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


def jit_train_step(graphdef, tx, mesh, *, loss_kind: str, l2: float, frozen=None, augment=None):
  """The step as the trainer and the benchmarks run it: state replicated and donated, batch split along
  ``data``, learning rate a traced scalar (so the plateau schedule never recompiles). ``frozen``, ``augment``:
  see ``loss_and_grads`` (``jaxtag.training.trainable.frozen_mask``, ``jaxtag.training.augment.from_config``)."""
  from jaxtag.core import sharding
  repl, data = sharding.replicated(mesh), sharding.data_sharded(mesh)
  return jax.jit(functools.partial(train_step, graphdef=graphdef, tx=tx, loss_kind=loss_kind, l2=l2,
                                   frozen=frozen, augment=augment),
                 in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0)


def eval_outputs(params, rest, audio, *, graphdef, outputs=("logits",), shards: int = 1, rows: int | None = None):
  """Inference outputs (BatchNorm running statistics, no dropout) as a tuple of float32 arrays: ``"logits"``
  and/or ``"embed"`` (the representation before the output layer), in micro-batches of ``rows`` per device
  (``in_microbatches``; ``shards``: the devices the batch is split over). The one forward pass of inference."""
  def fn(a):
    model = nnx.merge(graphdef, params, rest, copy=True)   # fresh Variables at this trace level
    heads = {"logits": lambda: model(a, train=False), "embed": lambda: model.embed(a, train=False)}
    return tuple(heads[o]().astype(jnp.float32) for o in outputs)
  return in_microbatches(fn, audio, shards=shards, rows=rows)


def eval_logits(params, rest, audio, *, graphdef, shards: int = 1, rows: int | None = None):
  """Inference logits alone (``eval_outputs``)."""
  return eval_outputs(params, rest, audio, graphdef=graphdef, shards=shards, rows=rows)[0]


def infer_rows() -> int:
  """Rows per device of one inference micro-batch: 4 on CPU, 0 (the whole batch at once) elsewhere.

  Why: on XLA:CPU a model run over 4 chunks at a time, one micro-batch after the other, is 10-30 % faster
  than over 32 at once (measured on the six peer models, 2 cores: the activations of a few chunks stay in
  cache from one layer to the next). Accelerators want the whole batch in one pass."""
  return 4 if jax.default_backend() == "cpu" else 0


def in_microbatches(fn, audio, *, shards: int = 1, rows: int | None = None):
  """``fn(audio)`` for a function that treats the rows of ``audio`` independently (inference: BatchNorm on
  its running statistics), computed over sequential micro-batches of ``rows`` rows per device
  (``infer_rows()`` by default). ``fn`` may return an array or a tuple of arrays, each with the batch first.

  Micro-batch ``i`` takes rows ``i, i+k, i+2k, ...``, so each one is split over the ``shards`` devices like
  the whole batch and no rows move between devices. A batch too small to split runs in one pass. The
  values equal one pass's to float32 rounding (XLA may pick other kernels for the smaller shape)."""
  rows = infer_rows() if rows is None else rows
  b = audio.shape[0]
  k = b // (rows * shards) if rows else 1
  if k < 2 or b % (rows * shards):
    return fn(audio)
  groups = jnp.swapaxes(audio.reshape((b // k, k) + audio.shape[1:]), 0, 1)     # (k, b/k, ...)
  out = jax.lax.map(fn, groups)
  merge = lambda y: jnp.swapaxes(y, 0, 1).reshape((b,) + y.shape[2:])
  return tuple(map(merge, out)) if isinstance(out, tuple) else merge(out)
