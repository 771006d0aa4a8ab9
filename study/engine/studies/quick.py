"""`[quick]`: the overrides that shrink a study to a smoke run (`study run --quick`)."""

from __future__ import annotations

from study.engine.studies.axes import resolve_key
from study.engine.studies.errors import ConfigError
from study.engine.studies.study_schema import StudyFile


def apply_quick(spec: StudyFile, grid, zipped, source):
    """`[quick]` keys: `seeds`, `random.samples`, `search.final_seeds`, `search.repeats`,
    `grid.<axis>`, `zip.<axis>` replace those parts of the study; any other key is a run
    setting applied after the axes."""
    seeds, random_search, late, problems = spec.seeds, spec.random, {}, []
    for key, value in spec.quick.items():
        if key == "seeds":
            seeds = value
        elif key == "random.samples":
            if random_search is None:
                problems.append("quick.random.samples: the study has no [random] section")
            else:
                random_search = random_search.model_copy(update={"samples": value})
        elif key in ("search.final_seeds", "search.repeats"):
            if spec.search is None:
                problems.append(f"quick.{key}: the study has no [search] section")
            elif not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                problems.append(f"quick.{key}: must be a positive integer; got {value!r}")
        elif key.startswith(("grid.", "zip.")):
            section, axis = key.split(".", 1)
            target = grid if section == "grid" else zipped
            if axis not in target:
                problems.append(f"quick.{key}: the study has no {section} axis {axis!r}; "
                                f"it has {', '.join(target) or 'none'}")
            elif not isinstance(value, list) or not value:
                problems.append(f"quick.{key}: must be a non-empty list")
            else:
                target[axis] = value
        else:
            try:
                late[resolve_key(key)] = value
            except ValueError as error:
                problems.append(f"quick.{key}: {error}")
    if not (isinstance(seeds, list) or (isinstance(seeds, int) and seeds > 0)):
        problems.append(f"quick.seeds: must be a positive integer or a list; got {seeds!r}")
    if problems:
        raise ConfigError(source, problems)
    return seeds, grid, zipped, random_search, late
