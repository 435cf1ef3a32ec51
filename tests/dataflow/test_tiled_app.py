"""The Tiled application smeflow builds: its settings reach every request without FastAPI
re-analysing the routes' dependencies on each one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi.dependencies.utils
import fastapi.routing
import pydantic._internal._generics
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det
from starlette.testclient import TestClient

from dataflow.catalog import Catalog
from dataflow.tiled_app import build_tiled_app


def test_catalog_requests_analyse_no_dependency(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiled's settings override used to make FastAPI rebuild ~160 dependency models per
    request (half a request's time), and each entry's parametrised pydantic response model
    was built anew per request; a run written and read back now rebuilds none of either."""
    catalog = Catalog(tmp_path / "c")
    try:
        RE = RunEngine({})
        catalog.subscribe(RE)
        RE(count([det], 1))  # every route a run uses has been served once
        built: list[Any] = []
        original = fastapi.dependencies.utils.get_dependant

        def counting(*args: Any, **kwargs: Any) -> Any:
            built.append(kwargs.get("call"))
            return original(*args, **kwargs)

        models: list[Any] = []
        create_model = pydantic._internal._generics.create_generic_submodel

        def counting_models(*args: Any, **kwargs: Any) -> Any:
            models.append(args[0] if args else kwargs)
            return create_model(*args, **kwargs)

        monkeypatch.setattr(fastapi.dependencies.utils, "get_dependant", counting)
        monkeypatch.setattr(pydantic._internal._generics, "create_generic_submodel",
                            counting_models)
        (uid,) = RE(count([det], 3))  # type: ignore[misc]
        assert len(catalog.run(uid)["primary"]["det"].read()) == 3  # (ophyd.sim det: a shared motor)
        assert built == []
        assert models == []
    finally:
        catalog.close()


def _app(folder: Path, key: str) -> Any:
    from tiled.catalog import from_uri
    from tiled.config import Authentication

    folder.mkdir()
    adapter = from_uri(f"sqlite:///{folder / 'catalog.db'}", init_if_not_exists=True,
                       writable_storage=[str(folder)])
    return build_tiled_app(adapter, Authentication(single_user_api_key=key,
                                                   allow_anonymous_access=False), quiet=True)


def test_the_application_answers_with_its_settings(tmp_path: Path) -> None:
    """The settings Tiled's override carried (here: the API key of ``authentication``)
    are the ones requests are checked against, with FastAPI no longer applying it."""
    app = _app(tmp_path / "a", "keyofa0123456789")
    assert not app.dependency_overrides
    with TestClient(app) as client:
        def get(key: str) -> int:
            answer = client.get("/api/v1/metadata/", headers={"Authorization": f"Apikey {key}"})
            return int(answer.status_code)

        assert get("keyofa0123456789") == 200
        assert get("keyofb0123456789") == 401
        assert client.get("/api/v1/metadata/").status_code == 401


def test_catalogs_of_one_process_share_their_routes_and_keep_their_own_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiled built (and FastAPI analysed) its API's routes for every catalog opened, and
    FastAPI analysed them again for the application at its first requests: about 0.4 s
    of CPU each; a second catalog now analyses none of them, and each catalog still
    answers with its own runs only."""
    import tiled.server.app as tiled_app

    from dataflow.run_queries import RunNotFoundError
    from dataflow.tiled_app import _SHARED as shared_routers

    first = Catalog(tmp_path / "first")
    analysed: list[Any] = []
    original = fastapi.dependencies.utils.get_dependant

    def counting(*args: Any, **kwargs: Any) -> Any:
        analysed.append(kwargs.get("call"))
        return original(*args, **kwargs)

    monkeypatch.setattr(fastapi.dependencies.utils, "get_dependant", counting)
    monkeypatch.setattr(fastapi.routing, "get_dependant", counting)
    second = Catalog(tmp_path / "second")  # (its first requests included)
    try:
        assert {id(tiled_app.get_zarr_router_v2()), id(tiled_app.get_zarr_router_v3())} \
            < set(shared_routers)
        endpoints = {route.endpoint for router in shared_routers.values()
                     for route in router.routes}
        assert len(shared_routers) >= 3 and len(endpoints) > 40
        assert not endpoints & set(analysed)
        RE = RunEngine({})
        first.subscribe(RE)
        (uid,) = RE(count([det], 2))  # type: ignore[misc]
        assert first.run(uid).metadata["start"]["uid"] == uid
        with pytest.raises(RunNotFoundError):
            second.run(uid)
        assert list(second.client) == []
    finally:
        first.close()
        second.close()


def test_an_application_with_authenticators_builds_its_own_routes() -> None:
    """Routes close over the authenticators Tiled passes: an application with any builds
    its API router itself instead of sharing one."""
    import tiled.server.app as tiled_app
    from tiled.media_type_registration import (
        default_deserialization_registry,
        default_serialization_registry,
    )
    from tiled.query_registration import default_query_registry
    from tiled.validation_registration import default_validation_registry

    from dataflow.tiled_app import share_api_routers

    share_api_routers()
    registries = (default_query_registry, default_serialization_registry,
                  default_deserialization_registry, default_validation_registry)
    assert tiled_app.get_router(*registries, {}) is tiled_app.get_router(*registries, {})
    with_one = {"toy": object()}
    assert tiled_app.get_router(*registries, with_one) is not \
        tiled_app.get_router(*registries, with_one)
