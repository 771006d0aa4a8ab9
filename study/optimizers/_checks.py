"""Argument checks shared by the optimizers: fail at construction, not mid-training."""


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_fraction(name: str, value: float, *, closed_right: bool = True) -> float:
    """`value` must be a real number in [0, 1] (or [0, 1) when closed_right is False)."""
    in_range = _is_real(value) and 0 <= value and (value <= 1 if closed_right else value < 1)
    if not in_range:
        bound = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"`{name}` must be a float in {bound}. Received: {name}={value!r}")
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    if not (_is_real(value) and value >= 0):
        raise ValueError(f"`{name}` must be a float >= 0. Received: {name}={value!r}")
    return float(value)
