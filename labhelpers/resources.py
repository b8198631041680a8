"""The lab's files that are not Python: the SQL, the CloudFormation template, the notebooks.

They live at the top of the repository (``sql/``, ``cfn/``, ``notebooks/``) and ship inside the
package as ``labhelpers/_data/...`` (links to those folders in a checkout, copies in the wheel),
so an editable checkout, a ``pip install .`` in a shared environment and a wheel all find them
through ``importlib.resources``. ``clicklab notebooks DIR`` copies the notebooks out.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from .errors import ConfigError

DATA = "_data"
KINDS = ("sql", "cfn", "notebooks")


def data_dir(kind: str) -> Path:
    """The folder of one kind of the lab's files (``sql``, ``cfn`` or ``notebooks``)."""
    if kind not in KINDS:
        raise ConfigError(f"no lab files of kind {kind!r}", f"use one of {', '.join(KINDS)}.")
    folder = Path(str(files("labhelpers").joinpath(DATA, kind))).resolve()  # links: checkout
    if not folder.is_dir():
        raise ConfigError(f"the installed labhelpers has no {kind}/ ({folder})",
                          "reinstall it from a checkout: pip install . (or make install).")
    return folder


def lab_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The numbered notebooks of the lab, in order: in ``folder`` (a student's copy) or the
    package's own."""
    return sorted(Path(folder or data_dir("notebooks")).glob("[0-9][0-9]_*.ipynb"))


def copy_notebooks(dest: str | Path, overwrite: bool = False) -> list[Path]:
    """Copy the lab's notebooks into ``dest`` (made if missing): a student's own folder, where
    JupyterLab shows them and their run records (``runs/``). A notebook already there is kept
    (it may hold the student's work) unless ``overwrite``. Returns the notebooks in ``dest``."""
    dest = Path(dest).expanduser()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot make the folder {dest} ({err.strerror})",
                          "give a folder you can write, e.g. clicklab notebooks ~/clickstream-lab."
                          ) from None
    for book in lab_notebooks():
        target = dest / book.name
        if overwrite or not target.exists():
            shutil.copyfile(book, target)
    return lab_notebooks(dest)
