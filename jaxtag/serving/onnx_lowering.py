"""Lowers a traced JAX function (a jaxpr) to an ONNX graph, one primitive at a time.

``to_onnx(fn, input_shape, ...)`` traces ``fn`` with a symbolic batch dimension (``jax.export.symbolic_shape``),
so the ONNX input and output keep a dynamic ``batch`` axis, and walks the jaxpr:

* Values that do not depend on the input (parameters, BatchNorm statistics, filterbanks, iotas, the banded
  kernels some layers build from their weights, anything computed from parameters) are evaluated here with
  JAX itself (``primitive.bind``) and become ONNX initializers: the graph holds only the data path, and a
  layer that derives its weights from learnable parameters (a filterbank from a learnable Q, say) exports
  without a rule of its own.
* Every other equation is lowered by a rule per primitive (``RULES``) to standard ONNX operators (opset 17).
  Calls (``jit``, ``custom_jvp_call``, ``custom_vjp_call``, ``remat``, ``closed_call``) are inlined; a ``scan``
  of fixed length (a GRU over time) is unrolled; ``cond`` on a known predicate takes its branch.
* The FFT (``rfft``, the log-mel's STFT) becomes a float64 DFT matmul, and the elementwise arithmetic on its
  real and imaginary parts (the power) stays in float64 until a non-elementwise op: more exact than a float32
  FFT, so both land within rounding of JAX's float32 result.

A primitive without a rule (a ``while`` loop, a scatter, a sort...) raises ``Unsupported``, a ``UserError``
that ``cli.run`` prints as one ``error:`` line naming the primitive and why it cannot lower.

Why not a converter package: ``jax2onnx`` (the maintained JAX -> ONNX converter) is measured against this
module in ``docs/design.md`` ("ONNX export"); it does not install beside jaxtag's pins.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import jax
import jax.extend as jex
import numpy as np

from jaxtag.core import errors

OPSET = 17
IR_VERSION = 8            # the IR of opset 17: loadable by onnxruntime >= 1.12
MAX_UNROLL = 4096         # scan steps unrolled at most (each step copies the loop body into the graph)


class Unsupported(errors.UserError):
  """The function uses a primitive (or a form of one) that has no ONNX lowering here."""

  def __init__(self, primitive: str, why: str, context: str = ""):
    super().__init__(f"{context}cannot lower JAX primitive '{primitive}' to ONNX: {why}")
    self.primitive, self.why = primitive, why


@dataclasses.dataclass(frozen=True)
class Tensor:
  """A value computed by the ONNX graph: its name there and its ONNX element type (float64 where the FFT's
  extended precision is carried, otherwise the jaxpr's dtype)."""
  name: str
  dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class ComplexPair:
  """A complex value as its real and imaginary parts (ONNX has no complex arithmetic)."""
  re: Tensor
  im: Tensor


def _is_static(shape) -> bool:
  return all(isinstance(d, (int, np.integer)) for d in shape)


def _same_dim(a, b) -> bool:
  try:
    return bool(a == b)
  except Exception:   # noqa: BLE001 (an undecidable symbolic comparison)
    return False


class Builder:
  """The ONNX graph under construction: nodes, deduplicated initializers, and the symbolic dimensions as
  1-D int64 tensors read from the inputs' shapes."""

  def __init__(self):
    import onnx
    from onnx import helper, numpy_helper
    self.onnx, self.helper, self.numpy_helper = onnx, helper, numpy_helper
    self.nodes, self.inits = [], []
    self._n = 0
    self._consts: dict[tuple, str] = {}
    self._dims: dict[str, str] = {}
    self.symbols: dict[str, str] = {}      # symbol name -> 1-D int64 tensor holding its value

  def fresh(self, prefix: str) -> str:
    self._n += 1
    return f"{prefix}_{self._n}"

  def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs):
    names = [self.fresh(op_type.lower()) for _ in range(outputs)]
    self.nodes.append(self.helper.make_node(op_type, list(inputs), names, **attrs))
    return names[0] if outputs == 1 else names

  def const(self, value, dtype=None) -> str:
    array = np.asarray(value, dtype=dtype)
    key = (array.dtype.str, array.shape, array.tobytes())
    if key not in self._consts:
      name = self.fresh("const")
      self.inits.append(self.numpy_helper.from_array(array, name))
      self._consts[key] = name
    return self._consts[key]

  def ints(self, values) -> str:
    return self.const(np.asarray(values, np.int64).reshape(-1))

  def onnx_type(self, dtype) -> int:
    return self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

  def cast(self, t: Tensor, dtype) -> Tensor:
    dtype = np.dtype(dtype)
    if t.dtype == dtype:
      return t
    return Tensor(self.op("Cast", t.name, to=self.onnx_type(dtype)), dtype)

  def name_of(self, value, dtype) -> str:
    """The ONNX name of ``value`` as ``dtype``: a known array becomes an initializer, a tensor is cast."""
    if isinstance(value, ComplexPair):
      raise Unsupported("complex", "complex values reach an operation other than real/imag/abs")
    if isinstance(value, Tensor):
      return self.cast(value, dtype).name
    return self.const(np.asarray(value).astype(dtype))

  def dim(self, d) -> str:
    """A 1-D int64 tensor of one dimension: a constant, or ``k * symbol + c`` computed from an input's shape."""
    if isinstance(d, (int, np.integer)):
      return self.ints([int(d)])
    key = str(d)
    if key not in self._dims:
      names = sorted(d.get_vars()) if hasattr(d, "get_vars") else []
      if len(names) != 1 or names[0] not in self.symbols:
        raise Unsupported("shape", f"dimension {d} is not a multiple of the input's batch dimension")
      s = names[0]
      c, k = d._evaluate({s: 0}), d._evaluate({s: 1}) - d._evaluate({s: 0})
      if d._evaluate({s: 2}) != 2 * k + c:
        raise Unsupported("shape", f"dimension {d} is not linear in {s}")
      t = self.symbols[s]
      if k != 1:
        t = self.op("Mul", t, self.ints([k]))
      if c:
        t = self.op("Add", t, self.ints([c]))
      self._dims[key] = t
    return self._dims[key]

  def shape(self, dims) -> str:
    """A 1-D int64 shape tensor for ``dims`` (constants, or concatenated pieces when some are symbolic)."""
    if _is_static(dims):
      return self.ints([int(d) for d in dims])
    return self.op("Concat", *[self.dim(d) for d in dims], axis=0)


# ---- the walk ----------------------------------------------------------------------------------------------

_CALLS = ("jit", "pjit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call", "custom_vjp_call",
          "custom_vjp_call_jaxpr", "custom_lin_call")
_NEVER_FOLD = {"random_bits", "random_seed", "random_wrap", "random_unwrap", "random_fold_in", "random_split"}


def _sub_jaxpr(eqn):
  """(jaxpr, consts) of a call-like equation."""
  for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
    sub = eqn.params.get(key)
    if isinstance(sub, jex.core.ClosedJaxpr):
      return sub.jaxpr, sub.consts
    if isinstance(sub, jex.core.Jaxpr):
      return sub, ()
  raise Unsupported(eqn.primitive.name, "a call without a jaxpr to inline")


def lower_jaxpr(b: Builder, jaxpr, consts: Sequence, args: Sequence) -> list:
  """Lowers ``jaxpr`` applied to ``consts`` and ``args`` (known arrays or ``Tensor``s); returns its outputs."""
  env = {}

  def read(atom):
    if isinstance(atom, jex.core.Literal):
      return np.asarray(atom.val, dtype=atom.aval.dtype)
    return env[atom]

  for var, value in zip(jaxpr.constvars, consts):
    env[var] = value if isinstance(value, (Tensor, ComplexPair)) else np.asarray(value)
  for var, value in zip(jaxpr.invars, args):
    env[var] = value
  for eqn in jaxpr.eqns:
    outs = lower_eqn(b, eqn, [read(a) for a in eqn.invars])
    for var, value in zip(eqn.outvars, outs):
      if not isinstance(var, jex.core.DropVar):
        env[var] = value
  return [read(v) for v in jaxpr.outvars]


def lower_eqn(b: Builder, eqn, ins: list) -> list:
  name = eqn.primitive.name
  if name in _CALLS:
    jaxpr, consts = _sub_jaxpr(eqn)
    return lower_jaxpr(b, jaxpr, consts, ins)
  known = all(isinstance(v, np.ndarray) for v in ins)
  if known and name not in _NEVER_FOLD and all(_is_static(v.aval.shape) for v in eqn.outvars):
    fast = _NUMPY.get(name)
    if fast is not None and (name != "div" or np.issubdtype(ins[0].dtype, np.floating)):
      return [np.asarray(fast(eqn.params, *ins), dtype=eqn.outvars[0].aval.dtype)]
    out = eqn.primitive.bind(*ins, **eqn.params)
    return [np.asarray(o) for o in out] if eqn.primitive.multiple_results else [np.asarray(out)]
  rule = RULES.get(name)
  if rule is None:
    raise Unsupported(name, WHY_NOT.get(name, "no ONNX lowering for it in jaxtag.serving.onnx_lowering"))
  outs = rule(b, eqn, ins)
  return outs if isinstance(outs, list) else [outs]


def _np_broadcast(p, x):
  shape, dims = tuple(int(d) for d in p["shape"]), tuple(p["broadcast_dimensions"])
  full = [x.shape[dims.index(i)] if i in dims else 1 for i in range(len(shape))]
  return np.broadcast_to(x.reshape(full), shape)


def _np_pad(p, x, value):
  config = [(int(lo), int(hi), int(interior)) for lo, hi, interior in p["padding_config"]]
  if any(interior or lo < 0 or hi < 0 for lo, hi, interior in config):
    return np.asarray(jax.lax.pad(x, value, config))
  return np.pad(x, [(lo, hi) for lo, hi, _ in config], constant_values=value)


# NumPy forms of the primitives that parameter folding meets most (one eager JAX dispatch per equation costs
# ~50 ms of compilation on a small CPU; these are the same IEEE float32 operations).
_NUMPY: dict[str, Callable] = {
    "add": lambda p, x, y: x + y, "sub": lambda p, x, y: x - y, "mul": lambda p, x, y: x * y,
    "max": lambda p, x, y: np.maximum(x, y), "min": lambda p, x, y: np.minimum(x, y),
    "div": lambda p, x, y: x / y, "neg": lambda p, x: -x, "sqrt": lambda p, x: np.sqrt(x), "rsqrt": lambda p, x: 1 / np.sqrt(x),
    "exp": lambda p, x: np.exp(x), "log": lambda p, x: np.log(x),
    "ge": lambda p, x, y: x >= y, "gt": lambda p, x, y: x > y, "le": lambda p, x, y: x <= y,
    "lt": lambda p, x, y: x < y, "eq": lambda p, x, y: x == y, "ne": lambda p, x, y: x != y,
    "select_n": lambda p, which, *cases: np.choose(which.astype(np.int64), cases),
    "broadcast_in_dim": _np_broadcast, "reshape": lambda p, x: (x if p.get("dimensions") is None else
                                                                np.transpose(x, p["dimensions"])).reshape(
                                                                    [int(d) for d in p["new_sizes"]]),
    "convert_element_type": lambda p, x: x.astype(p["new_dtype"]),
    "transpose": lambda p, x: np.transpose(x, p["permutation"]),
    "squeeze": lambda p, x: np.squeeze(x, tuple(p["dimensions"])),
    "expand_dims": lambda p, x: np.expand_dims(x, tuple(p["dimensions"])),
    "concatenate": lambda p, *xs: np.concatenate(xs, axis=p["dimension"]),
    "slice": lambda p, x: x[tuple(slice(int(a), int(b), int(s)) for a, b, s in
                                  zip(p["start_indices"], p["limit_indices"], p["strides"] or [1] * x.ndim))],
    "pad": _np_pad,
}


# ---- rules -------------------------------------------------------------------------------------------------

def _aval(eqn, i=0):
  return eqn.invars[i].aval


def _out(eqn, i=0):
  return eqn.outvars[i].aval


_UNARY = {"neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "tanh": "Tanh", "logistic": "Sigmoid",
          "sign": "Sign", "floor": "Floor", "ceil": "Ceil", "sin": "Sin", "cos": "Cos", "tan": "Tan",
          "asin": "Asin", "acos": "Acos", "atan": "Atan", "sinh": "Sinh", "cosh": "Cosh", "asinh": "Asinh",
          "acosh": "Acosh", "atanh": "Atanh", "erf": "Erf", "not": "Not", "copy": "Identity", "copy_p": "Identity",
          "sharding_constraint": "Identity", "pvary": "Identity", "stop_gradient": "Identity"}
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max", "min": "Min", "pow": "Pow",
           "eq": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual",
           "and": "And", "or": "Or", "xor": "Xor"}
# Elementwise ops that keep the float64 of the FFT's parts when every computed input carries it.
_EXTENDED = {"add", "sub", "mul", "neg", "integer_pow", "square"}


def _compute_dtype(name, eqn, ins):
  """The ONNX element type an elementwise op runs in: the jaxpr's, or float64 on the FFT's extended path."""
  tensors = [v for v in ins if isinstance(v, Tensor)]
  dtype = np.dtype(_aval(eqn).dtype)
  if (name in _EXTENDED and tensors and all(t.dtype == np.float64 for t in tensors)
      and dtype == np.float32):
    return np.dtype(np.float64)
  return dtype


def _unary(name):
  def rule(b, eqn, ins):
    (x,) = ins
    if isinstance(x, ComplexPair):
      raise Unsupported(name, "on a complex value")
    dtype = _compute_dtype(name, eqn, ins)
    out_dtype = dtype if dtype == np.float64 else np.dtype(_out(eqn).dtype)
    return Tensor(b.op(_UNARY[name], b.name_of(x, dtype)), out_dtype)
  return rule


def _binary(name):
  def rule(b, eqn, ins):
    dtype = _compute_dtype(name, eqn, ins)
    x, y = (b.name_of(v, dtype) for v in ins)
    out_dtype = np.dtype(_out(eqn).dtype)
    return Tensor(b.op(_BINARY[name], x, y), dtype if dtype == np.float64 and out_dtype == np.float32 else out_dtype)
  return rule


def _ne(b, eqn, ins):
  dtype = np.dtype(_aval(eqn).dtype)
  return Tensor(b.op("Not", b.op("Equal", *(b.name_of(v, dtype) for v in ins))), np.dtype(bool))


def _rem(b, eqn, ins):
  dtype = np.dtype(_aval(eqn).dtype)
  fmod = int(np.issubdtype(dtype, np.floating))
  return Tensor(b.op("Mod", *(b.name_of(v, dtype) for v in ins), fmod=1 if fmod else 0), dtype)


def _square(b, eqn, ins):
  dtype = _compute_dtype("square", eqn, ins)
  x = b.name_of(ins[0], dtype)
  return Tensor(b.op("Mul", x, x), dtype)


def _integer_pow(b, eqn, ins):
  """``x ** y`` by repeated squaring (the same products as XLA's expansion); a negative power is its
  reciprocal."""
  y = int(eqn.params["y"])
  dtype = _compute_dtype("integer_pow", eqn, ins)
  x = b.name_of(ins[0], dtype)
  if y == 0:
    return Tensor(b.op("Add", b.op("Mul", x, b.const(0, dtype)), b.const(1, dtype)), dtype)
  acc, base, n = None, x, abs(y)
  while n:
    if n & 1:
      acc = base if acc is None else b.op("Mul", acc, base)
    n >>= 1
    if n:
      base = b.op("Mul", base, base)
  if y < 0:
    acc = b.op("Reciprocal", acc)
  return Tensor(acc, dtype)


def _rsqrt(b, eqn, ins):
  dtype = np.dtype(_aval(eqn).dtype)
  return Tensor(b.op("Reciprocal", b.op("Sqrt", b.name_of(ins[0], dtype))), dtype)


def _log1p(b, eqn, ins):
  dtype = np.dtype(_aval(eqn).dtype)
  return Tensor(b.op("Log", b.op("Add", b.name_of(ins[0], dtype), b.const(1, dtype))), dtype)


def _expm1(b, eqn, ins):
  dtype = np.dtype(_aval(eqn).dtype)
  return Tensor(b.op("Sub", b.op("Exp", b.name_of(ins[0], dtype)), b.const(1, dtype)), dtype)


def _erfc(b, eqn, ins):
  """1 - erf(x) (exact GELU's form in JAX); ONNX has Erf only. Loses relative precision only where erfc is
  tiny (x > ~3), where the GELU it feeds multiplies it by x/2 and adds x."""
  dtype = np.dtype(_aval(eqn).dtype)
  return Tensor(b.op("Sub", b.const(1, dtype), b.op("Erf", b.name_of(ins[0], dtype))), dtype)


def _exp2(b, eqn, ins):
  dtype = np.dtype(_aval(eqn).dtype)
  return Tensor(b.op("Pow", b.const(2, dtype), b.name_of(ins[0], dtype)), dtype)


def _abs(b, eqn, ins):
  (x,) = ins
  if isinstance(x, ComplexPair):
    dtype = np.dtype(_out(eqn).dtype)
    re, im = b.cast(x.re, np.float64).name, b.cast(x.im, np.float64).name
    power = b.op("Add", b.op("Mul", re, re), b.op("Mul", im, im))
    return b.cast(Tensor(b.op("Sqrt", power), np.dtype(np.float64)), dtype)
  dtype = np.dtype(_aval(eqn).dtype)
  return Tensor(b.op("Abs", b.name_of(x, dtype)), dtype)


def _round(b, eqn, ins):
  dtype = np.dtype(_aval(eqn).dtype)
  x = b.name_of(ins[0], dtype)
  if int(eqn.params.get("rounding_method", 0)) == 1:        # to nearest even: ONNX Round
    return Tensor(b.op("Round", x), dtype)
  away = b.op("Floor", b.op("Add", b.op("Abs", x), b.const(0.5, dtype)))     # half away from zero
  return Tensor(b.op("Mul", b.op("Sign", x), away), dtype)


def _is_finite(b, eqn, ins):
  x = b.name_of(ins[0], _aval(eqn).dtype)
  return Tensor(b.op("Not", b.op("Or", b.op("IsInf", x), b.op("IsNaN", x))), np.dtype(bool))


def _select_n(b, eqn, ins):
  """``select_n(which, *cases)``: case ``which`` (a bool picks case 1 when true)."""
  which, cases = ins[0], ins[1:]
  dtype = np.dtype(_out(eqn).dtype)
  names = [b.name_of(c, dtype) for c in cases]
  wdtype = np.dtype(_aval(eqn).dtype)
  if len(cases) == 1:
    return Tensor(names[0], dtype)
  w = b.name_of(which, wdtype)
  if wdtype == np.bool_:
    return Tensor(b.op("Where", w, names[1], names[0]), dtype)
  out = names[0]
  for i in range(1, len(cases)):
    out = b.op("Where", b.op("Equal", w, b.const(i, wdtype)), names[i], out)
  return Tensor(out, dtype)


def _clamp(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  lo, x, hi = (b.name_of(v, dtype) for v in ins)
  return Tensor(b.op("Min", b.op("Max", x, lo), hi), dtype)


def _convert(b, eqn, ins):
  (x,) = ins
  if isinstance(x, ComplexPair):
    raise Unsupported("convert_element_type", "of a complex value")
  dtype = np.dtype(eqn.params["new_dtype"])
  if dtype == np.bool_ and x.dtype != np.bool_:
    return Tensor(b.op("Not", b.op("Equal", x.name, b.const(0, x.dtype))), dtype)
  return b.cast(Tensor(x.name, x.dtype), dtype)


def _reduce_precision(b, eqn, ins):
  bits = (int(eqn.params["exponent_bits"]), int(eqn.params["mantissa_bits"]))
  dtype = np.dtype(_aval(eqn).dtype)
  x = b.cast(ins[0], dtype)
  narrow = {(5, 10): np.float16, (8, 23): np.float32, (11, 52): np.float64}.get(bits)
  if narrow is None:
    raise Unsupported("reduce_precision", f"to {bits[0]} exponent and {bits[1]} mantissa bits")
  return b.cast(b.cast(x, narrow), dtype)


def _reduce(op):
  def rule(b, eqn, ins):
    axes = [int(a) for a in eqn.params["axes"]]
    dtype = np.dtype(_out(eqn).dtype)
    x = b.name_of(ins[0], dtype)
    if not axes:
      return Tensor(x, dtype)
    if op == "ReduceSum":
      return Tensor(b.op(op, x, b.ints(axes), keepdims=0), dtype)
    return Tensor(b.op(op, x, axes=axes, keepdims=0), dtype)
  return rule


def _arg(op):
  def rule(b, eqn, ins):
    (axis,) = eqn.params["axes"]
    x = b.name_of(ins[0], _aval(eqn).dtype)
    out = Tensor(b.op(op, x, axis=int(axis), keepdims=0, select_last_index=0), np.dtype(np.int64))
    return b.cast(out, eqn.params["index_dtype"])
  return rule


def _cumsum(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  x = b.name_of(ins[0], dtype)
  return Tensor(b.op("CumSum", x, b.const(np.int64(eqn.params["axis"])),
                     reverse=int(bool(eqn.params.get("reverse", False)))), dtype)


def _broadcast_in_dim(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  shape, dims = tuple(eqn.params["shape"]), tuple(eqn.params["broadcast_dimensions"])
  x = b.name_of(ins[0], dtype)
  in_shape = _aval(eqn).shape
  new_axes = [i for i in range(len(shape)) if i not in dims]
  if new_axes:
    x = b.op("Unsqueeze", x, b.ints(new_axes))
  full = [in_shape[dims.index(i)] if i in dims else 1 for i in range(len(shape))]
  if all(_same_dim(a, c) for a, c in zip(full, shape)):
    return Tensor(x, dtype)
  return Tensor(b.op("Expand", x, b.shape(shape)), dtype)


def _reshape(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  x = b.name_of(ins[0], dtype)
  if eqn.params.get("dimensions") is not None:
    x = b.op("Transpose", x, perm=[int(d) for d in eqn.params["dimensions"]])
  return Tensor(b.op("Reshape", x, b.shape(eqn.params["new_sizes"])), dtype)


def _transpose(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  return Tensor(b.op("Transpose", b.name_of(ins[0], dtype), perm=[int(p) for p in eqn.params["permutation"]]),
                dtype)


def _squeeze(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  return Tensor(b.op("Squeeze", b.name_of(ins[0], dtype), b.ints(eqn.params["dimensions"])), dtype)


def _expand_dims(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  return Tensor(b.op("Unsqueeze", b.name_of(ins[0], dtype), b.ints(eqn.params["dimensions"])), dtype)


def _slice_axes(b, x: str, shape, starts, limits, strides) -> str:
  """ONNX Slice over the axes that are really cut (a full symbolic axis is left alone)."""
  axes, s, e, st = [], [], [], []
  for axis, (start, limit, stride, size) in enumerate(zip(starts, limits, strides, shape)):
    if _same_dim(start, 0) and _same_dim(limit, size) and stride == 1:
      continue
    if not all(isinstance(v, (int, np.integer)) for v in (start, limit, stride)):
      raise Unsupported("slice", f"a cut of symbolic axis {axis}")
    axes.append(axis), s.append(int(start)), e.append(int(limit)), st.append(int(stride))
  if not axes:
    return x
  return b.op("Slice", x, b.ints(s), b.ints(e), b.ints(axes), b.ints(st))


def _slice(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  shape = _aval(eqn).shape
  strides = eqn.params.get("strides") or (1,) * len(shape)
  x = _slice_axes(b, b.name_of(ins[0], dtype), shape, eqn.params["start_indices"], eqn.params["limit_indices"],
                  strides)
  return Tensor(x, dtype)


def _rev(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  axes = [int(a) for a in eqn.params["dimensions"]]
  x = b.name_of(ins[0], dtype)
  n = len(axes)
  return Tensor(b.op("Slice", x, b.ints([-1] * n), b.ints([np.iinfo(np.int64).min] * n), b.ints(axes),
                     b.ints([-1] * n)), dtype)


def _known_ints(values, primitive: str, what: str) -> list[int]:
  if not all(isinstance(v, np.ndarray) for v in values):
    raise Unsupported(primitive, f"{what} computed from the input (only fixed positions lower to ONNX)")
  return [int(v) for v in values]


def _dynamic_slice(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  shape, sizes = _aval(eqn).shape, eqn.params["slice_sizes"]
  starts = _known_ints(ins[1:], "dynamic_slice", "start indices")
  starts = [s if _same_dim(n, size) else min(max(s, 0), int(size) - int(n))   # XLA clamps into range
            for s, n, size in zip(starts, sizes, shape)]
  limits = [size if _same_dim(n, size) else s + int(n) for s, n, size in zip(starts, sizes, shape)]
  return Tensor(_slice_axes(b, b.name_of(ins[0], dtype), shape, starts, limits, [1] * len(shape)), dtype)


def _gather(b, eqn, ins):
  """A gather at fixed indices, as what NumPy-style indexing traces to: per indexed axis either one start for
  every index row (a slice: basic indexing under a symbolic batch) or a take along that axis (``x[:, rows]``),
  at most one of those, then the collapsed axes squeezed and the axes put in JAX's order."""
  operand, indices = ins
  if not isinstance(indices, np.ndarray):
    raise Unsupported("gather", "indices computed from the input (only fixed indices lower to ONNX)")
  dn, sizes = eqn.params["dimension_numbers"], tuple(eqn.params["slice_sizes"])
  shape, dtype = _aval(eqn).shape, np.dtype(_out(eqn).dtype)
  if dn.operand_batching_dims:
    raise Unsupported("gather", "with batching dimensions")
  smap, collapsed, offset = tuple(dn.start_index_map), tuple(dn.collapsed_slice_dims), tuple(dn.offset_dims)
  idx = indices.astype(np.int64).reshape(indices.shape[:-1] + (len(smap),))
  rows = idx.reshape(-1, len(smap))
  starts, limits, take = [0] * len(shape), list(shape), None
  for axis, size in enumerate(sizes):
    if axis not in smap and not _same_dim(size, shape[axis]):
      limits[axis] = size
  for k, axis in enumerate(smap):
    column = rows[:, k]
    if len(column) and (column != column[0]).any():
      if take is not None or sizes[axis] != 1 or axis not in collapsed:
        raise Unsupported("gather", f"of this form (index map {smap}, slice sizes {sizes})")
      take = (axis, idx[..., k])
      continue
    start = int(column[0]) if len(column) else 0
    if "FILL" in str(eqn.params.get("mode")) and not 0 <= start <= int(shape[axis]) - int(sizes[axis]):
      raise Unsupported("gather", "an out-of-range index filled with a constant")
    start = min(max(start, 0), int(shape[axis]) - int(sizes[axis]))          # XLA clamps into range
    starts[axis], limits[axis] = start, start + int(sizes[axis])
  x = _slice_axes(b, b.name_of(operand, dtype), shape, starts, limits, [1] * len(shape))
  labels = [("o", i) for i in range(len(shape))]
  n_batch = idx.ndim - 1
  if take is not None:
    axis, where = take
    x = b.op("Gather", x, b.const(np.clip(where, 0, int(shape[axis]) - 1)), axis=axis)
    labels = labels[:axis] + [("i", i) for i in range(n_batch)] + labels[axis + 1:]
  elif n_batch and any(n != 1 for n in idx.shape[:-1]):
    raise Unsupported("gather", "the same slice repeated over index rows")
  else:                         # a batch of one row: its (size-1) axes are added back below
    x = b.op("Unsqueeze", x, b.ints(list(range(len(shape), len(shape) + n_batch)))) if n_batch else x
    labels = labels + [("i", i) for i in range(n_batch)]
  squeeze = [pos for pos, label in enumerate(labels) if label[0] == "o" and label[1] in collapsed]
  if squeeze:
    x = b.op("Squeeze", x, b.ints(squeeze))
    labels = [label for pos, label in enumerate(labels) if pos not in squeeze]
  kept = iter([label for label in labels if label[0] == "o"])
  batch = iter([("i", i) for i in range(n_batch)])
  order = [next(kept) if pos in offset else next(batch) for pos in range(len(labels))]
  perm = [labels.index(label) for label in order]
  if perm != list(range(len(perm))):
    x = b.op("Transpose", x, perm=perm)
  return Tensor(x, dtype)


def _pad(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  config = [(int(lo), int(hi), int(interior)) for lo, hi, interior in eqn.params["padding_config"]]
  if any(interior for _, _, interior in config):
    raise Unsupported("pad", "interior (dilating) padding")
  x, value = b.name_of(ins[0], dtype), b.name_of(ins[1], dtype)
  shape = _aval(eqn).shape
  if any(lo < 0 or hi < 0 for lo, hi, _ in config):                  # negative padding cuts
    starts = [max(0, -lo) for lo, _, _ in config]
    limits = [size if hi >= 0 else size + hi for size, (_, hi, _) in zip(shape, config)]
    x = _slice_axes(b, x, shape, starts, limits, [1] * len(shape))
    config = [(max(lo, 0), max(hi, 0), 0) for lo, hi, _ in config]
  pads = [lo for lo, _, _ in config] + [hi for _, hi, _ in config]
  if any(pads):
    x = b.op("Pad", x, b.ints(pads), value, mode="constant")
  return Tensor(x, dtype)


def _concatenate(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  return Tensor(b.op("Concat", *(b.name_of(v, dtype) for v in ins), axis=int(eqn.params["dimension"])), dtype)


def _stack(b, eqn, ins):
  dtype = np.dtype(_out(eqn).dtype)
  axis = int(eqn.params["axis"])
  parts = [b.op("Unsqueeze", b.name_of(v, dtype), b.ints([axis])) for v in ins]
  return Tensor(b.op("Concat", *parts, axis=axis), dtype)


def _split(b, eqn, ins):
  sizes = [int(s) for s in eqn.params["sizes"]]
  dtype = np.dtype(_aval(eqn).dtype)
  outs = b.op("Split", b.name_of(ins[0], dtype), b.ints(sizes), axis=int(eqn.params["axis"]), outputs=len(sizes))
  return [Tensor(o, dtype) for o in (outs if len(sizes) > 1 else [outs])]


def _iota(b, eqn, ins):
  dtype, shape = np.dtype(eqn.params["dtype"]), tuple(eqn.params["shape"])
  axis = int(eqn.params["dimension"])
  n = shape[axis]
  if not isinstance(n, (int, np.integer)):
    raise Unsupported("iota", "along a symbolic axis")
  line = np.arange(int(n), dtype=dtype).reshape([-1 if i == axis else 1 for i in range(len(shape))])
  return Tensor(b.op("Expand", b.const(line), b.shape(shape)), dtype)


def _dot_general(b, eqn, ins):
  """MatMul for the plain ``(..., k) @ (k, n)`` product, Einsum for every other contraction."""
  (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
  lhs, rhs = _aval(eqn, 0), _aval(eqn, 1)
  dtype = np.dtype(lhs.dtype)
  x, y = b.name_of(ins[0], dtype), b.name_of(ins[1], np.dtype(rhs.dtype))
  out_dtype = np.dtype(_out(eqn).dtype)
  if not lb and tuple(lc) == (lhs.ndim - 1,) and tuple(rc) == (0,) and rhs.ndim == 2:
    return b.cast(Tensor(b.op("MatMul", x, y), dtype), out_dtype)
  letters = iter("abcdefghijklmnopqrstuvwxyz")
  lhs_l = [next(letters) for _ in range(lhs.ndim)]
  rhs_l = [None] * rhs.ndim
  for i, j in zip(lc, rc):
    rhs_l[j] = lhs_l[i]
  for i, j in zip(lb, rb):
    rhs_l[j] = lhs_l[i]
  rhs_l = [c or next(letters) for c in rhs_l]
  out_l = [lhs_l[i] for i in lb] + [c for i, c in enumerate(lhs_l) if i not in lc and i not in lb] + \
          [c for j, c in enumerate(rhs_l) if j not in rc and j not in rb]
  eq = f"{''.join(lhs_l)},{''.join(rhs_l)}->{''.join(out_l)}"
  return b.cast(Tensor(b.op("Einsum", x, y, equation=eq), dtype), out_dtype)


def _conv(b, eqn, ins):
  """``conv_general_dilated`` as ONNX Conv on channels-first operands (transposed in and out as the
  dimension numbers say; a constant kernel is transposed here)."""
  p = eqn.params
  if any(int(d) != 1 for d in p["lhs_dilation"]):
    raise Unsupported("conv_general_dilated", "input dilation (a transposed convolution)")
  if int(p["batch_group_count"]) != 1:
    raise Unsupported("conv_general_dilated", "batch_group_count > 1")
  pads = [(int(lo), int(hi)) for lo, hi in p["padding"]]
  if any(lo < 0 or hi < 0 for lo, hi in pads):
    raise Unsupported("conv_general_dilated", "negative padding")
  dn = p["dimension_numbers"]
  lhs_spec, rhs_spec, out_spec = (tuple(int(i) for i in s) for s in (dn.lhs_spec, dn.rhs_spec, dn.out_spec))
  dtype = np.dtype(_aval(eqn, 0).dtype)
  x = b.name_of(ins[0], dtype)
  if lhs_spec != tuple(range(len(lhs_spec))):
    x = b.op("Transpose", x, perm=list(lhs_spec))
  if isinstance(ins[1], np.ndarray):
    w = b.const(np.transpose(ins[1], rhs_spec).astype(dtype))
  else:
    w = b.name_of(ins[1], dtype)
    if rhs_spec != tuple(range(len(rhs_spec))):
      w = b.op("Transpose", w, perm=list(rhs_spec))
  kernel = [int(_aval(eqn, 1).shape[d]) for d in rhs_spec[2:]]
  y = b.op("Conv", x, w, kernel_shape=kernel, strides=[int(s) for s in p["window_strides"]],
           dilations=[int(d) for d in p["rhs_dilation"]], group=int(p["feature_group_count"]),
           pads=[lo for lo, _ in pads] + [hi for _, hi in pads])
  perm = [0] * len(out_spec)
  for logical, position in enumerate(out_spec):
    perm[position] = logical
  if perm != list(range(len(perm))):
    y = b.op("Transpose", y, perm=perm)
  return b.cast(Tensor(y, dtype), _out(eqn).dtype)


def _pool(kind):
  """``reduce_window_{max,sum}`` as MaxPool / AveragePool over the pooled axes, the other axes moved in front
  and folded into ONNX's (N, C)."""
  def rule(b, eqn, ins):
    p = eqn.params
    if any(int(d) != 1 for d in p["base_dilation"]):
      raise Unsupported(eqn.primitive.name, "base dilation")
    shape, out_shape = _aval(eqn).shape, _out(eqn).shape
    dtype = np.dtype(_out(eqn).dtype)
    window, strides = [int(w) for w in p["window_dimensions"]], [int(s) for s in p["window_strides"]]
    dil, pads = [int(d) for d in p["window_dilation"]], [(int(lo), int(hi)) for lo, hi in p["padding"]]
    pooled = [i for i in range(len(shape)) if window[i] != 1 or strides[i] != 1 or pads[i] != (0, 0)]
    rest = [i for i in range(len(shape)) if i not in pooled]
    x = b.name_of(ins[0], dtype)
    if not pooled:
      return Tensor(x, dtype)
    order = rest + pooled
    if order != list(range(len(shape))):
      x = b.op("Transpose", x, perm=order)
    if len(rest) != 2:        # fold the non-pooled axes into (N, 1) or (N, C)
      lead = [shape[i] for i in rest[:-1]] if rest else []
      last = [shape[rest[-1]]] if rest else [1]
      folded = ([-1] if lead else [1]) + last + [int(shape[i]) for i in pooled]
      x = b.op("Reshape", x, b.ints(folded))
    attrs = dict(kernel_shape=[window[i] for i in pooled], strides=[strides[i] for i in pooled],
                 pads=[pads[i][0] for i in pooled] + [pads[i][1] for i in pooled])
    if kind == "max":
      x = b.op("MaxPool", x, dilations=[dil[i] for i in pooled], **attrs)
    else:
      if any(dil[i] != 1 for i in pooled):
        raise Unsupported(eqn.primitive.name, "window dilation")
      x = b.op("Mul", b.op("AveragePool", x, count_include_pad=1, **attrs),
               b.const(math.prod(window[i] for i in pooled), dtype))
    if len(rest) != 2:
      x = b.op("Reshape", x, b.shape([out_shape[i] for i in order]))
    if order != list(range(len(shape))):
      x = b.op("Transpose", x, perm=[order.index(i) for i in range(len(shape))])
    return Tensor(x, dtype)
  return rule


def _fft(b, eqn, ins):
  """A real FFT over the last axis as two float64 matmuls with the DFT basis (cos, -sin)."""
  fft_type = eqn.params["fft_type"]
  kind = getattr(fft_type, "name", None) or {0: "FFT", 1: "IFFT", 2: "RFFT", 3: "IRFFT"}.get(int(fft_type))
  lengths = tuple(int(n) for n in eqn.params["fft_lengths"])
  if kind != "RFFT" or len(lengths) != 1:
    raise Unsupported("fft", f"{kind} over {len(lengths)} axes (the real FFT over the last axis lowers)")
  n = lengths[0]
  x = b.cast(ins[0], np.float64) if isinstance(ins[0], Tensor) else Tensor(b.const(ins[0], np.float64),
                                                                           np.dtype(np.float64))
  angle = 2 * np.pi * np.outer(np.arange(n), np.arange(n // 2 + 1)) / n
  re = Tensor(b.op("MatMul", x.name, b.const(np.cos(angle))), np.dtype(np.float64))
  im = Tensor(b.op("MatMul", x.name, b.const(-np.sin(angle))), np.dtype(np.float64))
  return ComplexPair(re, im)


def _real(b, eqn, ins):
  if not isinstance(ins[0], ComplexPair):
    raise Unsupported("real", "of a value that is not an FFT output")
  return ins[0].re


def _imag(b, eqn, ins):
  if not isinstance(ins[0], ComplexPair):
    raise Unsupported("imag", "of a value that is not an FFT output")
  return ins[0].im


def _scan(b, eqn, ins):
  """A fixed-length ``scan`` unrolled: the body once per step, its per-step outputs stacked on axis 0."""
  p = eqn.params
  length = int(p["length"])
  if "num_consts" in p:
    n_consts, n_carry = int(p["num_consts"]), int(p["num_carry"])
  else:                                   # newer jax: ft_in is a flat tree of (consts, carry, xs)
    consts, carry, _ = (list(part) for part in p["ft_in"].update(list(ins)).unpack())
    n_consts, n_carry = len(consts), len(carry)
  if length > MAX_UNROLL:
    raise Unsupported("scan", f"{length} steps (more than {MAX_UNROLL} would be unrolled into the graph)")
  body = p["jaxpr"]
  consts, carry, xs = ins[:n_consts], list(ins[n_consts:n_consts + n_carry]), ins[n_consts + n_carry:]
  xs_avals = [v.aval for v in eqn.invars[n_consts + n_carry:]]
  steps = range(length - 1, -1, -1) if p["reverse"] else range(length)
  ys = {}
  for i in steps:
    x_i = []
    for x, aval in zip(xs, xs_avals):
      if isinstance(x, np.ndarray):
        x_i.append(x[i])
      else:
        x_i.append(Tensor(b.op("Gather", b.name_of(x, aval.dtype), b.const(np.int64(i)), axis=0),
                          np.dtype(aval.dtype)))
    outs = lower_jaxpr(b, body.jaxpr, body.consts, consts + carry + x_i)
    carry, ys[i] = outs[:n_carry], outs[n_carry:]
  stacked = []
  for k, var in enumerate(eqn.outvars[n_carry:]):
    parts = [ys[i][k] for i in range(length)]
    if all(isinstance(v, np.ndarray) for v in parts):
      stacked.append(np.stack(parts))
      continue
    dtype = np.dtype(var.aval.dtype)
    stacked.append(Tensor(b.op("Concat", *[b.op("Unsqueeze", b.name_of(v, dtype), b.ints([0])) for v in parts],
                               axis=0), dtype))
  return carry + stacked


def _cond(b, eqn, ins):
  index = ins[0]
  if not isinstance(index, np.ndarray):
    raise Unsupported("cond", "a branch chosen by the input's values (data-dependent control flow)")
  branches = eqn.params["branches"]
  branch = branches[int(np.clip(int(index), 0, len(branches) - 1))]
  return lower_jaxpr(b, branch.jaxpr, branch.consts, ins[1:])


def _top_k(b, eqn, ins):
  k = int(eqn.params["k"])
  dtype = np.dtype(_aval(eqn).dtype)
  values, idx = b.op("TopK", b.name_of(ins[0], dtype), b.ints([k]), axis=-1, largest=1, sorted=1, outputs=2)
  return [Tensor(values, dtype), b.cast(Tensor(idx, np.dtype(np.int64)), _out(eqn, 1).dtype)]


WHY_NOT = {
    "while": "a loop whose trip count depends on values has no fixed ONNX graph (recurrent layers must use a "
             "fixed-length scan)",
    "scatter": "scatters are not lowered", "scatter-add": "scatters are not lowered",
    "scatter_add": "scatters are not lowered", "sort": "sorting is not lowered",
    "dynamic_update_slice": "in-place updates are not lowered",
    "reduce_window": "only max and sum pooling windows lower", "cumprod": "only cumsum lowers",
    "cummax": "only cumsum lowers", "cummin": "only cumsum lowers",
    "random_bits": "random numbers in the inference function (is dropout on?)",
}

RULES: dict[str, Callable] = {
    **{name: _unary(name) for name in _UNARY}, **{name: _binary(name) for name in _BINARY},
    "ne": _ne, "rem": _rem, "square": _square, "integer_pow": _integer_pow, "rsqrt": _rsqrt, "log1p": _log1p,
    "expm1": _expm1, "erfc": _erfc, "exp2": _exp2, "abs": _abs, "round": _round, "is_finite": _is_finite,
    "select_n": _select_n, "clamp": _clamp, "convert_element_type": _convert,
    "reduce_precision": _reduce_precision,
    "reduce_sum": _reduce("ReduceSum"), "reduce_max": _reduce("ReduceMax"), "reduce_min": _reduce("ReduceMin"),
    "reduce_prod": _reduce("ReduceProd"), "argmax": _arg("ArgMax"), "argmin": _arg("ArgMin"), "cumsum": _cumsum,
    "broadcast_in_dim": _broadcast_in_dim, "reshape": _reshape, "transpose": _transpose, "squeeze": _squeeze,
    "expand_dims": _expand_dims, "slice": _slice, "rev": _rev, "dynamic_slice": _dynamic_slice,
    "gather": _gather, "pad": _pad, "concatenate": _concatenate, "stack": _stack, "split": _split,
    "iota": _iota, "dot_general": _dot_general, "conv_general_dilated": _conv,
    "reduce_window_max": _pool("max"), "reduce_window_sum": _pool("sum"),
    "optimization_barrier": lambda b, eqn, ins: list(ins), "fft": _fft, "real": _real, "imag": _imag, "scan": _scan, "cond": _cond, "top_k": _top_k,
}


# ---- the model ---------------------------------------------------------------------------------------------

def to_onnx(fn: Callable, input_shape: Sequence[int], *, input_name: str = "input", output_name: str = "output",
            batch_name: str = "batch", metadata: dict | None = None, producer: str = "jaxtag"):
  """The ONNX model of ``fn`` applied to float32 ``(batch, *input_shape)`` (``batch`` dynamic): one output,
  ``fn``'s, with its symbolic axes named ``batch_name``. ``metadata`` becomes ``metadata_props``."""
  import json
  (batch,) = jax.export.symbolic_shape(batch_name)
  closed = jax.make_jaxpr(fn)(jax.ShapeDtypeStruct((batch, *input_shape), np.float32))
  (out_aval,) = closed.out_avals
  b = Builder()
  b.symbols[batch_name] = b.op("Shape", input_name, start=0, end=1)
  (out,) = lower_jaxpr(b, closed.jaxpr, closed.consts, [Tensor(input_name, np.dtype(np.float32))])
  out_dtype = np.dtype(out_aval.dtype)
  b.nodes.append(b.helper.make_node("Identity", [b.name_of(out, out_dtype)], [output_name]))
  h = b.helper

  def dims(shape):
    return [d if isinstance(d, (int, np.integer)) else str(d) for d in shape]
  graph = h.make_graph(b.nodes, producer, [h.make_tensor_value_info(input_name, b.onnx_type(np.float32),
                                                                    [batch_name, *input_shape])],
                       [h.make_tensor_value_info(output_name, b.onnx_type(out_dtype), dims(out_aval.shape))],
                       b.inits)
  model = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name=producer,
                       ir_version=IR_VERSION)
  if metadata:
    h.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})
  b.onnx.checker.check_model(model)
  return model
