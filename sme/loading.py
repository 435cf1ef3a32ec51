"""Loading what the command line names: a design (``MODULE:NAME`` or ``path/to/file.py:NAME``)
and its stimulus (``MODULE:FUNC`` or a CSV file).

Modules are found the way ``python -m`` finds them: the current folder first, then the
Python path. A file path loads that file as a module (its folder goes on the path, so
the modules beside it import as they do under ``python path/to/design.py``).

Everything that can go wrong in the user's code or input becomes one ``CliError`` line
naming the spec and, where the failure is in a file, its ``file:line``: a module that
cannot be found, a syntax error in it or in a module it imports, an exception raised
while importing it or while calling the network function, a class or a function that
needs arguments where a network function is expected, a stimulus item that is not a
mapping, a CSV stimulus column naming a bus or signal the network does not have.
Errors of the SME kernel itself (``SmeError``: a bad declaration, two writers of a bus)
pass through unchanged; they already say what and where.
"""

from __future__ import annotations

import csv
import difflib
import importlib
import importlib.util
import inspect
import itertools
import os
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import SmeError
from .network import Network, TracedSignal
from .trace import UNDEFINED_TEXT, TraceBudget
from .types import SignalType, TypeMisfit


class CliError(Exception):
    """A user error on the command line: printed as one line, exit status 2."""


def where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``'s traceback outside Python's import
    machinery (the line of the user's code that failed), or ``""``."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen ")]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def describe_exception(exc: BaseException) -> str:
    """``Type: message (at file:line)``: an exception raised by user code, in one line."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    loc = where(exc)
    return f"{text} (at {loc})" if loc else text


def _is_path(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def _import_file(spec: str, text: str) -> ModuleType:
    path = Path(text).expanduser()
    try:
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise CliError(f"{spec!r}: {path} {what}; give a Python file, e.g. "
                           "path/to/design.py:build")
    except (OSError, ValueError) as exc:  # a name the OS refuses (NUL, too long)
        raise CliError(f"{spec!r}: {path}: {exc}") from None
    path = path.resolve()
    name = path.stem if path.stem.isidentifier() else "_smeflow_design"
    known = sys.modules.get(name)
    if known is not None and getattr(known, "__file__", None) == str(path):
        return known
    if known is not None:  # another module of that name is loaded: keep both
        name = f"_smeflow_design_{abs(hash(str(path)))}"
    mspec = importlib.util.spec_from_file_location(name, path)
    if mspec is None or mspec.loader is None:
        raise CliError(f"{spec!r}: {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(mspec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # classes defined there find their module (inspect, pickle)
    try:
        mspec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import_module(spec: str, name: str) -> ModuleType:
    if name.startswith("."):
        raise CliError(f"{spec!r}: module {name!r} is relative; give its full dotted name")
    if not all(part.isidentifier() for part in name.split(".")):
        raise CliError(f"{spec!r}: {name!r} is not a module name; give a dotted module "
                       "name (my_pkg.design) or a file (path/to/design.py)")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:  # as `python -m` does
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise CliError(f"{spec!r}: cannot import module {name!r}: no module {exc.name!r} "
                           f"in the current folder ({cwd}) or on the Python path") from None
        raise


def import_design(spec: str, module: str) -> ModuleType:
    """The module ``module`` of ``spec`` (a dotted name or a file path), imported."""
    try:
        if _is_path(module):
            return _import_file(spec, module)
        return _import_module(spec, module)
    except (CliError, SmeError):
        raise
    except SyntaxError as exc:  # the design or a module it imports is not valid Python
        raise CliError(f"{spec!r}: {exc.filename}:{exc.lineno}: {exc.msg}") from exc
    except ImportError as exc:  # a module the design imports is missing
        raise CliError(f"{spec!r}: cannot import module {module!r}: {exc} "
                       f"(at {where(exc)})") from exc
    except (Exception, SystemExit) as exc:  # the design's own code failed while importing
        raise CliError(f"{spec!r}: importing {module!r} raised "
                       f"{describe_exception(exc)}") from exc


def _names(module: ModuleType) -> list[str]:
    return [n for n, v in vars(module).items()
            if not n.startswith("_") and (isinstance(v, Network) or inspect.isfunction(v))
            and getattr(v, "__module__", module.__name__) == module.__name__]


def load_object(spec: str) -> Any:
    """``package.module:attr`` or ``path/to/file.py:attr`` → the object (``attr`` may be
    dotted)."""
    module_name, colon, attr = spec.rpartition(":")
    if not colon or not module_name or not attr:
        raise CliError(f"{spec!r}: expected MODULE:NAME or FILE.py:NAME, e.g. "
                       "sme.examples.counter:build")
    obj: Any = import_design(spec, module_name)
    module = obj
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = _names(module)
            close = difflib.get_close_matches(attr, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = f" (it defines: {', '.join(names)})" if names and not close else ""
            raise CliError(f"{spec!r}: module {module_name!r} has no {attr!r}{hint}"
                           f"{listed}") from None
    return obj


def load_network(spec: str) -> Network:
    """``MODULE:NAME`` naming a ``Network`` or a function of no arguments returning one."""
    obj = load_object(spec)
    if isinstance(obj, Network):
        return obj
    if isinstance(obj, type):
        raise CliError(f"{spec!r} is the class {obj.__name__}; name a Network, or a function "
                       "of no arguments that builds one (e.g. def build() -> Network)")
    if not callable(obj):
        raise CliError(f"{spec!r} is not a Network (nor a function returning one): {obj!r}")
    try:
        inspect.signature(obj).bind()
    except TypeError:
        params = ", ".join(str(p) for p in inspect.signature(obj).parameters.values())
        raise CliError(f"{spec!r} takes arguments ({params}); name a function "
                       "that builds the network without arguments") from None
    except ValueError:  # no signature (a builtin): let the call decide
        pass
    try:
        obj = obj()
    except SmeError:
        raise
    except Exception as exc:
        raise CliError(f"{spec!r}: building the network raised "
                       f"{describe_exception(exc)}") from exc
    if not isinstance(obj, Network):
        raise CliError(f"{spec!r} is not a Network (nor a function returning one): it "
                       f"returned {obj!r}")
    return obj


def _checked(spec: str, it: Iterator[Any]) -> Iterator[Mapping[Any, Any]]:
    """The items of a stimulus function, each checked to be a mapping; an exception in the
    user's generator becomes a ``CliError`` naming the item and the failing line."""
    for i in itertools.count():
        try:
            item = next(it)
        except StopIteration:
            return
        except SmeError:
            raise
        except Exception as exc:
            raise CliError(f"--stimulus {spec!r}: computing item {i} raised "
                           f"{describe_exception(exc)}") from exc
        if not isinstance(item, Mapping):
            shown = repr(item)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise CliError(f"--stimulus {spec!r}: item {i} is {shown} (a "
                           f"{type(item).__name__}), not a {{'bus.signal': value}} mapping")
        yield item


def _bounded(spec: str, items: Iterable[Mapping[Any, Any]], budget: TraceBudget
             ) -> Iterator[Mapping[Any, Any]]:
    """``items`` while their trace fits in ``budget``; a ``CliError`` at the first item
    past it. Without ``--ticks`` the stimulus says how long the run is, and a generator
    that never ends (``while True: yield …``) grew the trace until the machine had no
    memory left."""
    it = iter(items)
    yield from itertools.islice(it, budget.ticks)
    if next(it, None) is not None:
        raise CliError(f"--stimulus {spec!r}: still giving ticks after {budget.ticks}, the "
                       f"most whose trace of {budget.signals} signals fits in "
                       f"{budget.explain()}; give --ticks N to run a part of it")


def load_stimulus(spec: str | None, ticks: int | None, network: Network | None = None
                  ) -> Iterable[Mapping[Any, Any]] | None:
    """A fresh stimulus iterator from ``--stimulus``, cut to ``ticks`` items when given;
    None when ``spec`` is None. ``spec`` is ``MODULE:FUNC`` (``FUNC()`` is called) or a
    CSV file (``read_csv_stimulus``; needs ``network``). Without ``ticks``, a stimulus
    longer than the trace ``network``'s memory allows (:class:`sme.trace.TraceBudget`)
    raises ``CliError`` once it passes that length."""
    if spec is None:
        return None
    items: Iterable[Mapping[Any, Any]]
    if spec.lower().endswith(".csv"):
        if network is None:
            raise CliError(f"--stimulus {spec!r}: a CSV stimulus needs the network")
        items = read_csv_stimulus(spec, network)
    else:
        items = _checked(spec, _stimulus_items(spec))
    if ticks is not None:
        return itertools.islice(items, ticks)
    if network is None:
        return items
    return _bounded(spec, items, TraceBudget.now(len(network.traced_signals())))


def _stimulus_items(spec: str) -> Iterator[Any]:
    """The iterator a ``MODULE:FUNC`` stimulus function returns."""
    func = load_object(spec)
    if not callable(func) or isinstance(func, type):
        raise CliError(f"--stimulus {spec!r} is not a function returning stimulus")
    try:
        stim = func()
    except SmeError:
        raise
    except Exception as exc:
        raise CliError(f"--stimulus {spec!r} raised {describe_exception(exc)}") from exc
    try:
        return iter(stim)
    except TypeError:
        raise CliError(f"--stimulus {spec!r} returned {stim!r}, not an iterable of "
                       "{'bus.signal': value} mappings") from None


def read_csv_stimulus(path: str | os.PathLike[str], network: Network
                      ) -> list[dict[str, Any]]:
    """Per-tick stimulus from a CSV file: a header of ``bus.signal`` names, one row per
    tick, cells written as in a trace CSV (Bool ``0``/``1``, integers in decimal, enum
    members by name, fixed point as the raw integer, arrays space-separated). An empty
    cell or ``U`` leaves the signal as it was. Columns of signals that are not top-level
    inputs are ignored.

    A file whose header is the network's whole trace — every signal, in trace order, as
    ``smeflow sim --csv`` writes it — is read as a trace: its first row is the reset
    state, not a tick (``sme.trace``), so its inputs must be the inputs' initial values
    and the ticks start at the next row. A trace written by ``--csv`` thus replays its
    inputs tick for tick.

    Raises ``CliError`` naming the file, line and column for a column that names no
    signal of the network, a repeated column, a row of the wrong length, a value that
    does not fit its signal, a trace's first row that is not the reset state, or a last
    row without its line break (the file may be cut short inside that row: ``0,1`` cut
    to ``0,`` would leave the second input as it was).
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # (Excel starts with a BOM)
    except UnicodeDecodeError as exc:
        raise CliError(f"--stimulus {path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise CliError(f"--stimulus {path}: cannot read it: {exc.strerror or exc}") from None
    signals: dict[str, tuple[SignalType, bool]] = {
        t.name: (t.type, t.is_input) for t in network.traced_signals()}
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader, None)
        if header is None:
            raise CliError(f"--stimulus {path}:1: empty file (no header)")
        if not text.endswith(("\n", "\r")):
            raise CliError(f"--stimulus {path}:{len(text.splitlines())}: the last row does "
                           "not end with a line break: the file may be cut short inside it "
                           "(add the line break if the row is whole)")
        inputs = [t.name for t in network.traced_signals() if t.is_input]
        for j, name in enumerate(header):
            if name not in signals:
                bus = name.partition(".")[0]
                why = (f"the network has no bus {bus!r}"
                       if bus not in {b.name for b in network.buses}
                       else f"bus {bus!r} has no signal {name.partition('.')[2]!r}")
                raise CliError(f"--stimulus {path}:1: column {j + 1} {name!r}: {why} "
                               f"(inputs of '{network.name}': {', '.join(inputs) or '-'})")
            if header.count(name) > 1:
                raise CliError(f"--stimulus {path}:1: column {name!r} appears twice")
        used = [(j, n) for j, n in enumerate(header) if signals[n][1]]
        traced = network.traced_signals()
        is_trace = header == [t.name for t in traced]
        rows: list[dict[str, Any]] = []
        for lineno, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise CliError(f"--stimulus {path}:{lineno}: {len(cells)} cells, expected "
                               f"{len(header)}")
            if is_trace and lineno == 2:  # the reset state: no tick
                _check_reset_row(f"--stimulus {path}:2", traced, cells)
                continue
            row: dict[str, Any] = {}
            for j, name in used:
                cell = cells[j].strip()
                if cell in ("", UNDEFINED_TEXT):
                    continue
                try:
                    row[name] = signals[name][0].from_text(cell)
                except (ValueError, TypeMisfit, SmeError) as exc:
                    why = str(exc) if repr(cell) in str(exc) else (
                        f"{cell!r} is not a {signals[name][0]!r}: {exc}")
                    raise CliError(f"--stimulus {path}:{lineno}: column {name}: {why}"
                                   ) from None
            rows.append(row)
    except csv.Error as exc:
        raise CliError(f"--stimulus {path}:{reader.line_num}: {exc}") from None
    return rows


def _check_reset_row(where: str, traced: list[TracedSignal], cells: list[str]) -> None:
    """Raise ``CliError`` when a trace's first row (``cells``) does not hold the inputs'
    initial values (``U`` for one without): then it is no reset state, and taking the
    rows after it as ticks would shift every input by one."""
    for t, cell in zip(traced, cells, strict=True):
        if not t.is_input:
            continue
        want = t.type.to_text(t.spec.initial) if t.spec.has_initial else UNDEFINED_TEXT
        got = cell.strip()
        try:
            same = got == want or (got not in ("", UNDEFINED_TEXT) and want != UNDEFINED_TEXT
                                   and t.type.to_text(t.type.from_text(got)) == want)
        except (ValueError, TypeMisfit, SmeError):
            same = False
        if not same:
            raise CliError(
                f"{where}: column {t.name} is {got!r}, not its initial value {want!r}: the "
                "header lists every signal of the network, as a trace written by "
                "'smeflow sim --csv' does, whose first row is the reset state; give only "
                "the inputs' columns for a stimulus whose first row is tick 0")


__all__ = ["CliError", "describe_exception", "import_design", "load_network", "load_object",
           "load_stimulus", "read_csv_stimulus", "where"]
