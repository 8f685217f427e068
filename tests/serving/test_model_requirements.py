"""The logged pyfunc's requirements name its runtime libraries, not the local package."""

from __future__ import annotations

from importlib import metadata

from har_mlops.serving.pyfunc import PACKAGE_DIR, model_requirements


def test_requirements_pin_the_runtime_libraries_installed_here():
    pins = dict(line.split("==") for line in model_requirements())
    for name in ("mlflow", "tensorflow", "numpy", "pandas", "scikit-learn"):
        assert pins[name] == metadata.version(name)


def test_requirements_leave_out_the_local_package():
    names = {line.split("==")[0].replace("_", "-") for line in model_requirements()}
    assert "har-mlops" not in names


def test_the_logged_code_is_the_package_itself():
    assert (PACKAGE_DIR / "__init__.py").is_file()
    assert (PACKAGE_DIR / "serving" / "pyfunc.py").is_file()
    assert PACKAGE_DIR.name == "har_mlops"
