"""pyFAI's ``method`` argument read as the pixel splitting it asks for.

pyFAI takes a method as a tuple ``(split, algorithm, implementation)``, an
``IntegrationMethod``, or a string: one of its former method names (``"csr"``, ``"lut"``,
``"nosplit_csr"``, ``"full_csr"``, ``"splitpixel"``, ``"cython"``, ``"numpy"``, ...) or
words naming the parts (``"bbox_csr_cython"``, ``"full histogram python"``). The
algorithm (histogram, CSR, LUT, CSC) and the implementation change how pyFAI computes,
not what: only the splitting changes the result, and smeflow runs every splitting with
one CSR-style OpenCL engine. So a method is read for its splitting, ``"no"``, ``"bbox"``
or ``"full"``; a method whose splitting smeflow does not have (pyFAI's ``"pseudo"``), a
string that names no splitting outside pyFAI's former names, or a word that is no part
of a method name is refused, naming it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["split_of"]

#: pyFAI's spellings of each pixel splitting (its method tuples and former names)
_SPLITS = {"no": "no", "nosplit": "no", "bbox": "bbox", "splitbbox": "bbox",
           "full": "full", "splitpixel": "full"}
#: pyFAI's former method names that name no splitting, with the one pyFAI picks for them
#: (``IntegrationMethod.select_old_method``)
_FORMER = {"csr": "bbox", "lut": "bbox", "csrocl": "bbox", "lutocl": "bbox",
           "oclcsr": "bbox", "ocllut": "bbox", "cython": "no", "numpy": "no",
           "python": "no"}
_ALGORITHMS = ("histogram", "csr", "lut", "csc")
_IMPLEMENTATIONS = ("python", "numpy", "cython", "opencl", "ocl")
#: words besides the parts: "BBox split", OpenCL device targets ("ocl_gpu", "ocl_0,0")
_FILLERS = ("split", "cpu", "gpu", "any", "all", "*")
_HINT = ("give the pixel splitting ('no', 'bbox' or 'full'), a pyFAI method tuple such as "
         "('bbox', 'csr', 'cython'), or a pyFAI method name such as 'csr', 'nosplit_csr', "
         "'full_csr'")


def split_of(method: Any) -> str:
    """The pixel splitting asked for by a pyFAI ``method`` (see the module's text)."""
    split = getattr(method, "split_lower", None) or getattr(method, "split", None)
    if isinstance(split, str):
        return _split_word(method, split)
    if isinstance(method, (tuple, list)) and method and all(
            isinstance(m, str) for m in method):
        for part, known in zip(method[1:], (_ALGORITHMS, _IMPLEMENTATIONS), strict=False):
            if part.strip().lower() not in known:
                raise ValueError(f"unknown method {method!r}: {part!r} is not a pyFAI "
                                 f"{'algorithm' if known is _ALGORITHMS else 'implementation'}"
                                 f" ({', '.join(known)}); {_HINT}")
        return _split_word(method, method[0])
    if isinstance(method, str):
        return _split_string(method)
    raise ValueError(f"unknown method {method!r}: {_HINT}")


def _split_word(method: Any, word: str) -> str:
    key = word.strip().lower().replace("_", "")
    if key in _SPLITS:
        return _SPLITS[key]
    if key == "pseudo":
        raise ValueError(f"method {method!r}: pyFAI's 'pseudo' splitting is not offered "
                         "here; use 'bbox' or 'full'")
    raise ValueError(f"unknown method {method!r}: {word!r} is not a pixel splitting; {_HINT}")


def _split_string(method: str) -> str:
    whole = method.strip().lower().replace("_", "").replace(" ", "")
    if whole in _SPLITS:
        return _SPLITS[whole]
    if whole in _FORMER:
        return _FORMER[whole]
    splits: list[str] = []
    for word in filter(None, re.split(r"[\s_,\-]+", method.strip().lower())):
        if word in _SPLITS or word == "pseudo":
            splits.append(_split_word(method, word))
        elif word not in _ALGORITHMS + _IMPLEMENTATIONS + _FILLERS and not word.isdigit():
            raise ValueError(f"unknown method {method!r}: {word!r} is no part of a pyFAI "
                             f"method name; {_HINT}")
    if len(set(splits)) != 1:
        what = "names no pixel splitting" if not splits else "names two pixel splittings"
        raise ValueError(f"method {method!r} {what}; {_HINT}")
    return splits[0]
