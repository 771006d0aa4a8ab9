"""Study files -> runs: the schema of a study file, its validation, and its expansion into runs.

    errors        ConfigError; pydantic's errors as `key.path: what is wrong` lines
    run_schema    one run's settings: [data], [model], [training]
    study_schema  the rest of a study file: [random], [search], claims, [report], seeds
    components    component names: the registry's, "keras.<name>", "package.module:Class"
    layer_list    the model's hidden stack as a list of layers (or from the shorthands)
    axes          which setting each axis varies, and the combinations
    quick         the [quick] smoke form
    resolved      a base configuration with an arm's values, validated
    identity      run keys and arm names
    limits        how many runs, and whether a run's model fits in memory
    expansion     load_study / expand: a file -> Study with its RunSpecs
    search        random search in rounds, its later stages made from stored results
"""

from study.engine.studies.errors import ConfigError
from study.engine.studies.expansion import RunSpec, Study, expand, load_study

__all__ = ["ConfigError", "RunSpec", "Study", "expand", "load_study"]
