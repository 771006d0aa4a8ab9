"""Bad input found by trying the project as a new user would: each a clear message, exit code 2,
no traceback, nothing stored; and the light commands that must not import TensorFlow."""

import subprocess
import sys

import pytest

from tests.engine_fixtures import DATA_DIR, ROOT, run_study, runs_table, study_env, xor_study


def _nothing_stored(db):
    if db.exists():
        assert runs_table(db) == {}


def _refused(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_a_study_of_ten_million_runs_is_refused_before_it_is_expanded(tmp_path):
    study = xor_study(tmp_path / "huge.toml", seeds=1000000,
                      grid={"learning_rate": [0.1 * i for i in range(1, 11)]})
    result = run_study(study, "--db", tmp_path / "r.db", cwd=tmp_path, timeout=120)
    _refused(result, "would expand to 10,000,000 runs", "1,000,000 (seeds)",
             "10 (grid.learning_rate)", "the limit is 100,000")
    _nothing_stored(tmp_path / "r.db")


def test_two_study_files_with_one_name_are_refused_naming_both(tmp_path):
    a = xor_study(tmp_path / "a.toml", name="same")
    b = xor_study(tmp_path / "b.toml", name="same", seeds=[7])
    result = run_study(a, b, "--db", tmp_path / "r.db", cwd=tmp_path)
    _refused(result, f"{b}: name: 'same' is also the name of the study in {a}")


def test_non_finite_numbers_and_every_problem_of_a_file_at_once(tmp_path):
    study = tmp_path / "bad.toml"
    study.write_text('name = "bad"\nseeds = 0\n[data]\ndataset = "xor"\n[model]\nhidden = [4]\n'
                     '[training]\nlearning_rate = -1\nsteps = 10\nbatch_size = 4\n'
                     'optimizer_args = { clipnorm = 1e400 }\n')
    result = run_study(study, "--db", tmp_path / "r.db", cwd=tmp_path)
    _refused(result, "training.optimizer_args.clipnorm: inf is not allowed: numbers must be finite",
             "seeds: 0 is not allowed", "training.learning_rate: -1 is not allowed")
    _nothing_stored(tmp_path / "r.db")


def test_a_model_that_cannot_fit_in_memory_is_refused_with_its_estimate(tmp_path):
    study = tmp_path / "big.toml"
    study.write_text('name = "big"\nseeds = 1\n[data]\ndataset = "mnist"\n[model]\n'
                     'hidden = [40000, 40000]\n[training]\noptimizer = "adam"\nsteps = 10\n')
    result = run_study(study, "--db", tmp_path / "r.db", "--data-dir", DATA_DIR, cwd=tmp_path,
                       env={"STUDY_MEMORY_BYTES": str(24 * 2**30)})
    # 784*40000 + 40000 + 40000*40000 + 40000 + 40000*10 + 10 parameters, x 4 bytes x 4 copies
    _refused(result, "the model needs about 26.1 GB (1,631,840,010 parameters x 4 bytes x 4",
             "this machine has 25.8 GB of memory")
    _nothing_stored(tmp_path / "r.db")


def test_a_book_finding_naming_an_unknown_claim_is_refused(tmp_path):
    study = xor_study(tmp_path / "book.toml", seeds=1)
    study.write_text(study.read_text() + (
        '[[claims]]\nid = "adam-beats-sgd"\ntext = "t"\nkind = "better"\n'
        'metric = "val_accuracy"\narm = { optimizer = "adam" }\n'
        'baseline = { optimizer = "sgd" }\n'
        '[book]\nexperiment = "DLFS 6.1.8"\nreports = "Adam learns faster."\n'
        '[[book.findings]]\ntext = "Adam learns faster than SGD."\nclaim = "adam-beat-sgd"\n'))
    result = run_study(study, "--db", tmp_path / "r.db", cwd=tmp_path)
    _refused(result, f"{study}: book.findings[0].claim: 'adam-beat-sgd' is not a claim id of "
                     f"this study (did you mean 'adam-beats-sgd'?); the study's claims: "
                     f"adam-beats-sgd")
    _nothing_stored(tmp_path / "r.db")


@pytest.mark.parametrize("command", [
    "import study.results",
    "from study.cli import main; main(['list', '--markdown'])",
    "from study.cli import main; main(['data', 'fetch', '--quiet', '--data-dir', DATA])",
    "from study.cli import main; main(['report', '--db', DB, '--out', OUT])",
])
def test_light_commands_do_not_import_tensorflow(command, tmp_path):
    db = tmp_path / "r.db"
    if "report" in command:  # a database with one stored study to report on
        study = xor_study(tmp_path / "x.toml", seeds=1, grid={"optimizer": ["sgd"]})
        assert run_study(study, "--db", db, cwd=tmp_path).returncode == 0
    code = (f"DATA, DB, OUT = {str(DATA_DIR)!r}, {str(db)!r}, {str(tmp_path / 'out')!r}\n"
            f"{command}\nimport sys\n"
            "print('HEAVY', sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=study_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout[-500:]
