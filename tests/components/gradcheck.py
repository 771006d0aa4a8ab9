"""Backend-neutral gradients for the component tests: analytic (autodiff) and numerical.

The one place in the tests that imports TensorFlow or JAX, locally, chosen by
`keras.backend.backend()`; every test stays backend-neutral by calling these helpers.
"""

import contextlib
import inspect

import numpy as np

import keras
from keras import ops


@contextlib.contextmanager
def float64():
    """Let float64 tensors exist: JAX truncates them to float32 unless x64 is enabled."""
    if keras.backend.backend() == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def autodiff(layer, x, w, training=False):
    """`(y, grads)` for `L = sum(w * layer(x))`, from one call of the layer.

    `grads` maps `"inputs"` and each trainable weight's path to dL/d(that), as NumPy arrays.
    `y` is the output of the same call, so a random layer's gradient can be matched to the
    mask it drew.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tf_autodiff(layer, x, w, training)
    if backend == "jax":
        return _jax_autodiff(layer, x, w, training)
    raise NotImplementedError(f"no gradient helper for the {backend} backend")


def _tf_autodiff(layer, x, w, training):
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    w = tf.convert_to_tensor(w)
    weights = layer.trainable_variables
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(w * tf.cast(y, w.dtype))
    grads = tape.gradient(loss, [x] + list(weights))
    names = ["inputs"] + [v.path for v in weights]
    return ops.convert_to_numpy(y), {n: _numpy(g) for n, g in zip(names, grads)}


def _jax_autodiff(layer, x, w, training):
    import jax
    import jax.numpy as jnp

    trainable = [v.value for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]

    # stateless_call calls `call` directly, so pass `training` only where `call` takes it.
    takes_training = "training" in inspect.signature(layer.call).parameters
    kwargs = {"training": training} if takes_training else {}

    def loss(x, trainable):
        y, _ = layer.stateless_call(trainable, non_trainable, x, **kwargs)
        return jnp.sum(w * y.astype(w.dtype)), y

    (_, y), (gx, gw) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        jnp.asarray(x), trainable)
    names = ["inputs"] + [v.path for v in layer.trainable_variables]
    return np.asarray(y), {n: _numpy(g) for n, g in zip(names, [gx] + list(gw))}


def _numpy(g):
    # None means "not connected"; the tests want to see it, not have it turned into zeros.
    return None if g is None else np.asarray(ops.convert_to_numpy(g))


def numerical(layer, x, w, training=False, h=1e-5):
    """Central differences of `L = sum(w * layer(x))`, keyed like `autodiff`'s grads.

    Use float64 inputs and a float64 layer: the error is then about `h**2 * L'''` plus
    `1e-16 * |L| / h`, i.e. ~1e-10, far below the tests' 1e-6 relative tolerance.
    """
    x = np.array(x, dtype="float64")
    w = np.asarray(w, dtype="float64")

    def loss():
        y = ops.convert_to_numpy(layer(x, training=training))
        return float(np.sum(w * y))

    grads = {"inputs": _perturb(x, loss, h)}
    for variable in layer.trainable_variables:
        value = np.array(ops.convert_to_numpy(variable), dtype="float64")

        def loss_at(_, variable=variable, value=value):
            variable.assign(value)
            return loss()

        grads[variable.path] = _perturb(value, loss_at, h, pass_array=True)
        variable.assign(value)
    return grads


def _perturb(array, loss, h, pass_array=False):
    """d loss / d array by central differences, one element at a time (`array` is mutated
    and restored)."""
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = loss(array) if pass_array else loss()
        flat[i] = old - h
        minus = loss(array) if pass_array else loss()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def value_and_input_gradient(function, x, upstream, compiled=False):
    """`(function(x), upstream . d function / dx)` as NumPy arrays, for an element-wise
    `function`: reverse mode with the cotangent `upstream`, eagerly or compiled
    (`tf.function` / `jax.jit`)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def both(x, upstream):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(x)
            return y, tape.gradient(y, x, output_gradients=upstream)

        run = tf.function(both) if compiled else both
        y, dx = run(tf.constant(x), tf.constant(upstream))
    elif backend == "jax":
        import jax

        def both(x, upstream):
            y, pullback = jax.vjp(function, x)
            return y, pullback(upstream)[0]

        run = jax.jit(both) if compiled else both
        y, dx = run(x, upstream)
    else:
        raise NotImplementedError(f"no gradient helper for the {backend} backend")
    return np.asarray(y), np.asarray(dx)
