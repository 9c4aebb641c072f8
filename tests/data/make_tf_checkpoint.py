"""Writes tests/data/tf_checkpoint/ with TensorFlow (not needed by the tests, which read the files it wrote).

  python tests/data/make_tf_checkpoint.py     # in an environment with tensorflow-cpu

A TF1 ``tf.compat.v1.train.Saver`` checkpoint, the form of the musicnn package's weights: a V2 tensor bundle
(``model.index`` SSTable + ``model.data-00000-of-00001``), with Adam slots and ``beta1_power`` as a trained
musicnn checkpoint has them, and one variable of each dtype the reader supports. Every value is a pure function
of its name (``expected()``), so the test knows what must come back.
"""
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_checkpoint")


def expected() -> dict[str, np.ndarray]:
  def ramp(shape, dtype, scale=0.01):
    return (np.arange(int(np.prod(shape))).reshape(shape) * scale - 0.5).astype(dtype)
  return {
      "conv2d/kernel": ramp((7, 3, 1, 4), np.float32),
      "conv2d/bias": ramp((4,), np.float32),
      "conv2d/kernel/Adam": ramp((7, 3, 1, 4), np.float32, 0.001),
      "conv2d/kernel/Adam_1": ramp((7, 3, 1, 4), np.float32, 0.0001),
      "batch_normalization/moving_mean": ramp((4,), np.float32, 1.5),
      "dense/kernel": ramp((16, 3), np.float32),
      "beta1_power": np.float32(0.9),
      "global_step": np.int64(12345),
      "half_weights": ramp((2, 3), np.float16),
      "double_weights": ramp((3,), np.float64),
      "int_table": np.arange(-3, 3, dtype=np.int32),
      "mask": np.array([True, False, True]),
  }


def main():
  import tensorflow as tf
  tf.compat.v1.disable_eager_execution()
  with tf.Graph().as_default():
    variables = [tf.compat.v1.Variable(v, name=n) for n, v in expected().items()]
    saver = tf.compat.v1.train.Saver(variables, save_relative_paths=True)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      os.makedirs(OUT, exist_ok=True)
      saver.save(sess, os.path.join(OUT, "model"), write_meta_graph=False)
  print(sorted(os.listdir(OUT)))


if __name__ == "__main__":
  main()
