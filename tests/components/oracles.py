"""NumPy oracles: each update rule (and the book's dropout) as the lecture notes write it,
independent of Keras.

Written in the style of "Deep Learning from Scratch" `common/optimizer.py`: one class per
rule, `update(params, grads)` over a dict of float64 arrays, 2-5 lines of math. Where the
notes give two formulas for one technique (seed 000's slides vs seed 001's DLFS code),
both are here, named for their source.
"""

import numpy as np


class _Stateful:
    def _zeros(self, name, params, value=0.0):
        if getattr(self, name, None) is None:
            setattr(self, name, {k: np.full_like(v, value) for k, v in params.items()})
        return getattr(self, name)


class SGD:
    """seed 000 / DLFS: W <- W - lr * dL/dW."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for k in params:
            params[k] -= self.lr * grads[k]


class Momentum(_Stateful):
    """seed 000 / DLFS: v <- alpha v - lr g; W <- W + v."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        v = self._zeros("v", params)
        for k in params:
            v[k] = self.momentum * v[k] - self.lr * grads[k]
            params[k] += v[k]


class NesterovDLFS(_Stateful):
    """DLFS `Nesterov`: W += mu^2 v - (1 + mu) lr g, then v <- mu v - lr g (old v first)."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, None

    def update(self, params, grads):
        v = self._zeros("v", params)
        for k in params:
            params[k] += self.momentum ** 2 * v[k] - (1 + self.momentum) * self.lr * grads[k]
            v[k] = self.momentum * v[k] - self.lr * grads[k]


class AdaGradSeed000(_Stateful):
    """seed 000: G <- G + g^2; w <- w - lr / sqrt(G + eps) * g (G starts at g0)."""

    def __init__(self, lr=0.01, eps=1e-7, g0=0.0):
        self.lr, self.eps, self.g0, self.h = lr, eps, g0, None

    def update(self, params, grads):
        h = self._zeros("h", params, self.g0)
        for k in params:
            h[k] += grads[k] * grads[k]
            params[k] -= self.lr * grads[k] / np.sqrt(h[k] + self.eps)


class AdaGradDLFS(_Stateful):
    """DLFS / seed 001: h += g*g; W -= lr * g / (sqrt(h) + 1e-7), h starts at 0."""

    def __init__(self, lr=0.01):
        self.lr, self.h = lr, None

    def update(self, params, grads):
        h = self._zeros("h", params)
        for k in params:
            h[k] += grads[k] * grads[k]
            params[k] -= self.lr * grads[k] / (np.sqrt(h[k]) + 1e-7)


class RMSPropSeed000(_Stateful):
    """seed 000: G <- gamma G + (1 - gamma) g^2; w <- w - lr / sqrt(G + eps) * g."""

    def __init__(self, lr=0.01, gamma=0.9, eps=1e-7):
        self.lr, self.gamma, self.eps, self.h = lr, gamma, eps, None

    def update(self, params, grads):
        h = self._zeros("h", params)
        for k in params:
            h[k] = self.gamma * h[k] + (1 - self.gamma) * grads[k] ** 2
            params[k] -= self.lr * grads[k] / np.sqrt(h[k] + self.eps)


class RMSPropDLFS(_Stateful):
    """DLFS: h *= decay; h += (1 - decay) g*g; W -= lr g / (sqrt(h) + 1e-7)."""

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr, self.decay_rate, self.h = lr, decay_rate, None

    def update(self, params, grads):
        h = self._zeros("h", params)
        for k in params:
            h[k] *= self.decay_rate
            h[k] += (1 - self.decay_rate) * grads[k] * grads[k]
            params[k] -= self.lr * grads[k] / (np.sqrt(h[k]) + 1e-7)


class AdamDLFS(_Stateful):
    """DLFS: bias correction folded into the step size, eps (1e-7) outside the root."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.iter, self.m, self.v = 0, None, None

    def update(self, params, grads):
        m, v = self._zeros("m", params), self._zeros("v", params)
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for k in params:
            m[k] += (1 - self.beta1) * (grads[k] - m[k])
            v[k] += (1 - self.beta2) * (grads[k] ** 2 - v[k])
            params[k] -= lr_t * m[k] / (np.sqrt(v[k]) + self.eps)


class _AdamBiasCorrected(_Stateful):
    """m, v as in the paper, then w -= lr * step(m_hat, v_hat) with the bias-corrected moments."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-7):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t, self.m, self.v = 0, None, None

    def update(self, params, grads):
        m, v = self._zeros("m", params), self._zeros("v", params)
        self.t += 1
        for k in params:
            m[k] = self.beta1 * m[k] + (1 - self.beta1) * grads[k]
            v[k] = self.beta2 * v[k] + (1 - self.beta2) * grads[k] ** 2
            m_hat, v_hat = m[k] / (1 - self.beta1 ** self.t), v[k] / (1 - self.beta2 ** self.t)
            params[k] -= self.lr * self.step(m_hat, v_hat)


class AdamAlgorithm1(_AdamBiasCorrected):
    """Kingma & Ba Algorithm 1 (optax, PyTorch): w -= lr m_hat / (sqrt(v_hat) + eps)."""

    def step(self, m_hat, v_hat):
        return m_hat / (np.sqrt(v_hat) + self.eps)


class AdamSeed000(_AdamBiasCorrected):
    """seed 000: W <- W - lr v_corr / sqrt(S_corr + eps) (eps inside the root)."""

    def step(self, m_hat, v_hat):
        return m_hat / np.sqrt(v_hat + self.eps)


class RMSPropCenteredMomentum(_Stateful):
    """Keras's RMSprop, centered, with momentum, and eps beside the root as DLFS places it:
    s <- rho s + (1 - rho) g^2; a <- rho a + (1 - rho) g; u = lr g / (sqrt(s - a^2) + eps);
    m <- momentum m + u; W <- W - m."""

    def __init__(self, lr=0.01, rho=0.9, momentum=0.5, eps=1e-7):
        self.lr, self.rho, self.momentum, self.eps = lr, rho, momentum, eps
        self.s = self.a = self.m = None

    def update(self, params, grads):
        s, a, m = self._zeros("s", params), self._zeros("a", params), self._zeros("m", params)
        for k in params:
            s[k] = self.rho * s[k] + (1 - self.rho) * grads[k] ** 2
            a[k] = self.rho * a[k] + (1 - self.rho) * grads[k]
            root = np.sqrt(s[k] - a[k] ** 2)
            m[k] = self.momentum * m[k] + self.lr * grads[k] / (root + self.eps)
            params[k] -= m[k]


class DropoutDLFS:
    """DLFS `common/layers.py` Dropout (non-inverted): training keeps x where rand > ratio,
    unscaled; test multiplies by 1 - ratio. `rand` is passed in (the book draws
    `np.random.rand(*x.shape)`), so the oracle can take the layer's uniforms."""

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio, self.mask = dropout_ratio, None

    def forward(self, x, rand=None, train_flg=True):
        if train_flg:
            self.mask = rand > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask
