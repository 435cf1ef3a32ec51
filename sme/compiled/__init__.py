"""The compiled simulation backend: the whole network flattened into one function and
compiled to machine code, bit-exact with the interpreter.

Select it with ``Simulator(net, backend="compiled")``; options ``checks=False`` (skip the
overflow checks once a design is verified) and ``cache_dir=`` (default
``$SMEFLOW_CACHE_DIR``, else ``~/.cache/smeflow``).

Pipeline: ``sme.lower`` (the front end shared with the VHDL exporter) gives each process
class a typed IR with exact value ranges; ``sme.compiled.emit`` (statements) and
``emit_expr`` (expressions) turn each process instance into Python statements over int64
locals, adding a run-time check only where the ranges do not prove a store fits;
``sme.compiled.codegen`` puts every process in schedule order, the bus latches, stimulus
and recording into one loop; ``sme.compiled.cache`` has numba compile it (once per
network content; machine code cached on disk); ``sme.compiled.session`` runs it, and
``sme.compiled.failures`` turns a failed check into the interpreter's error.

Step mode (a testbench driving and reading every tick) costs one call of the generated
``step(W)`` per tick on the session's one state array; ``sme.compiled.views`` gives the
input/output views that read and write that array, and the trace rows.

Why numba (and not C through the system compiler with cffi, or Cython):

* it installs from PyPI as wheels (numba + llvmlite, LLVM included) on every platform we
  run: no C compiler, headers or Debian packages needed at run time;
* the generated code stays Python (readable, debuggable, runnable under the plain
  interpreter for diagnosis), and ints/numpy arrays cross the boundary without glue code;
* its on-disk cache (``cache=True``, keyed by the source file's content and the
  signature) gives the cached start we need, and writes its files atomically;
* measured here: a generated benchmark pipeline runs at ~3e8 ticks/s with overflow checks
  (~4000x MyHDL), the same as a hand-flattened numba version; first compile ~1.3 s,
  cached start ~0.4 s (mostly ``import numba``).

C via cffi would need ``gcc`` and Python headers on every machine that simulates, and an
own cache and build-lock layer; its speed would be the same (both end in LLVM/GCC -O2
code of the same loop). Cython likewise needs a C toolchain.

Ahead of time: numba's first call in a process builds its compiler (≈ 50 MB) even when
the machine code comes from its cache, so ``smeflow demo --prepare`` also builds the
loaded simulations' ``run``/``reset``/``step`` into an extension module with numba's own
ahead-of-time compiler (``sme.native``; ``cache.load_module`` returns its functions when
it matches). A machine without ``gcc``, or a numba without ``numba.pycc`` (pending
deprecation), simply keeps the JIT path.
"""

from .session import CompiledBackend, CompiledBuild, CompiledSession

__all__ = ["CompiledBackend", "CompiledBuild", "CompiledSession"]
