"""The installed package: importable from anywhere, its API visible, --help fast."""

import subprocess
import sys


def run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_folder_named_nmfsep_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    clone = tmp_path / "nmfsep"  # a clone of the repository, seen from the folder that holds it
    (clone / "tests").mkdir(parents=True)
    (clone / "README.md").write_text("a clone\n")
    result = run_python("import nmfsep; print(nmfsep.__file__); print(callable(nmfsep.separate))", tmp_path)
    assert result.returncode == 0, result.stderr
    path, is_callable = result.stdout.split()
    assert path.endswith("__init__.py") and str(tmp_path) not in path
    assert is_callable == "True"


def test_dir_and_help_show_the_public_api(tmp_path):
    code = ("import nmfsep, pydoc; names = dir(nmfsep); "
            "print(all(n in names for n in nmfsep.__all__)); "
            "text = pydoc.render_doc(nmfsep, renderer=pydoc.plaintext); "
            "print(all(f in text for f in ('separate(', 'factorize(', 'learn('))); ")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_importing_the_package_and_the_cli_loads_no_heavy_module(tmp_path):
    code = ("import sys, nmfsep, nmfsep.cli; "
            "print(sorted(m for m in ('numpy', 'librosa', 'matplotlib', 'sklearn', 'scipy', 'flask', 'werkzeug') "
            "if m in sys.modules))")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_and_a_plain_split_import_no_dask_distributed_or_fsspec(tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.sin(np.arange(4410) * 0.1).astype(np.float32) * 0.3, 22050)
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from nmfsep.cli import cli\n"
            "heavy = ('dask', 'distributed', 'fsspec')\n"
            "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
            "assert CliRunner().invoke(cli, ['split', '--help']).exit_code == 0\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n"
            "result = CliRunner().invoke(cli, ['split', 'a.wav', '-o', 'out', '--iter', '5', '--grouping', 'none', '-q'])\n"
            "assert result.exit_code == 0, result.output\n"
            "print(sorted(m for m in heavy if m in sys.modules))\n")
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "[]"]
