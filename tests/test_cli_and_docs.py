"""`study list` and the README are generated from the registry and stay in sync with it."""

import os
import pathlib
import subprocess
import sys

from study import registry
from study.cli import markdown_table

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_study_list_shows_every_component():
    result = subprocess.run([sys.executable, "-m", "study", "list"], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for component in registry.COMPONENTS:
        line = next(l for l in result.stdout.splitlines() if l.split()[:1] == [component.name])
        assert component.summary and component.summary in line


def test_every_summary_is_one_real_sentence():
    for component in registry.COMPONENTS:
        assert 10 < len(component.summary) <= 100, (component.name, component.summary)


def test_readme_component_table_matches_the_registry():
    readme = (ROOT / "README.md").read_text()
    start, end = "<!-- components:start -->\n", "\n<!-- components:end -->"
    table = readme[readme.index(start) + len(start):readme.index(end)]
    assert table == markdown_table(registry.KINDS), (
        "README's component table is stale: run `make readme` to regenerate it")


def test_unknown_names_get_a_did_you_mean():
    try:
        registry.lookup("optimizer", "adma")
    except registry.UnknownComponentError as error:
        assert str(error) == "'adma' is not an optimizer; did you mean 'adam'?"
    else:
        raise AssertionError("'adma' resolved")


def test_keras_names_resolve_to_builtins():
    import keras

    assert type(registry.create("optimizer", "keras.adam")) is keras.optimizers.Adam
    nesterov = registry.create("optimizer", "keras.nesterov")
    assert type(nesterov) is keras.optimizers.SGD and nesterov.nesterov and nesterov.momentum == 0.9
    assert type(registry.create("optimizer", "keras.nadam")) is keras.optimizers.Nadam
    assert type(registry.create("initializer", "keras.he_normal", seed=3)) is keras.initializers.HeNormal
    assert type(registry.create("layer", "keras.batch_norm")) is keras.layers.BatchNormalization
    assert type(registry.create("activation", "keras.leaky_relu")) is keras.layers.LeakyReLU
    assert registry.create("activation", "keras.gelu").activation is keras.activations.gelu
    for kind, name in [("optimizer", "keras.adma"), ("layer", "keras.residual"),
                       ("initializer", "keras.nonsense")]:
        try:
            registry.create(kind, name)
        except registry.UnknownComponentError:
            pass
        else:
            raise AssertionError(f"{name} resolved")


def _readme_block(heading: str) -> str:
    """The first ```python block after `heading` in the README, as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(heading):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```", start)]


def test_the_readmes_usage_example_runs_as_written(tmp_path):
    # Run in a fresh process, where the example saves model.keras; then, in another one,
    # load it with only `import study` (the promise in the example's last comment).
    code = _readme_block("## Use the components in your own model")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                         capture_output=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    loaded = subprocess.run(
        [sys.executable, "-c", "import keras, study\n"
         "model = keras.saving.load_model('model.keras')\n"
         "print(type(model.optimizer).__module__, model.count_params())"],
        cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split()[0].startswith("study.optimizers")
