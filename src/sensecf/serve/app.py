"""The FastAPI application: the JSON API over a WhatIf, the page, and uvicorn on 127.0.0.1 by default.

Counterfactual generation (and the LLM narrative) runs in one worker thread of its own, so a slow method never
holds up scoring, which runs in the server's thread pool. Requests whose Host header is not an allowed host are
refused (a web page elsewhere cannot reach the patient rows through DNS rebinding).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources

import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .api_models import (CFRequest, Counterfactual, Error, Info, Intervention, InterventionRequest, Patient,
                         PatientSummary, Score, ScoreRequest)
from .export import intervention_html
from .whatif import InputError, WhatIf

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1"]
STATIC = resources.files("sensecf.serve") / "static"
ERRORS = {404: {"model": Error}, 422: {"model": Error}}


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One readable line for pydantic's errors (malformed JSON, missing or mistyped fields)."""
    parts, field = [], None
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return f"malformed JSON body: {err.get('ctx', {}).get('error', err['msg'])} at position " \
                   f"{err['loc'][-1]}", None
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        field = field or (loc[0] if loc else None)
        parts.append(f"{'.'.join(loc) or 'body'}: {err['msg']}")
    return "; ".join(parts), field


def create_app(whatif: WhatIf, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app; `allowed_hosts` are the Host header values served (default: loopback names only)."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sensecf-cf")

    @asynccontextmanager
    async def lifespan(_app):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="sensecf what-if", lifespan=lifespan,
                  description="Score edited test rows with the run's classifier, compare the run's counterfactuals "
                              "and ask any method for a new one. probability = P(class 1).")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_HOSTS)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(InputError)
    async def input_error(_request: Request, exc: InputError):
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError):
        message, field = _validation_message(exc)
        return JSONResponse({"detail": message, "field": field}, status_code=422)

    async def in_worker(fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(executor, partial(fn, *args, **kwargs))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return (STATIC / "index.html").read_text()

    @app.get("/info", response_model=Info)
    def info():
        """Features (units, bounds, training range, slider step, direction, actionability), classes, methods."""
        return whatif.info()

    @app.get("/patients", response_model=list[PatientSummary])
    def patients(q: str = Query("", description="text in the row id or participant id"),
                 predicted_class: int | None = Query(None, ge=0, le=1),
                 min_probability: float = Query(0.0, ge=0, le=1), max_probability: float = Query(1.0, ge=0, le=1),
                 with_counterfactuals: bool = Query(False, description="only rows with counterfactuals"),
                 limit: int = Query(500, ge=1, le=100_000)):
        """Test rows (those with counterfactuals first) with their predicted class and P(class 1)."""
        return whatif.patients(q, predicted_class, min_probability, max_probability, with_counterfactuals, limit)

    @app.get("/patients/{pid}", response_model=Patient, responses=ERRORS)
    def patient(pid: str):
        """One row: values, fixed features, slider bounds, directions, P(class 1), counterfactuals."""
        return whatif.patient(pid)

    @app.post("/score", response_model=Score, responses=ERRORS)
    def score(body: ScoreRequest):
        """P(class 1) of the row with `features` changed; 422 names a fixed, out-of-bounds or wrong-way feature."""
        return whatif.score(body.id, body.features)

    @app.post("/counterfactuals", response_model=Counterfactual, responses=ERRORS)
    async def counterfactuals(body: CFRequest):
        """A new counterfactual of the row by `method` (runs in the generation worker; LLMs take a while)."""
        return await in_worker(whatif.counterfactual, body.id, body.method, body.options)

    async def _intervention(body: InterventionRequest) -> dict:
        run = partial(whatif.intervention, body.id, body.features, body.method, body.llm, body.options)
        return await (in_worker(run) if body.llm else run_in_threadpool(run))

    @app.post("/intervention", response_model=Intervention, response_model_exclude_unset=True, responses=ERRORS)
    async def intervention(body: InterventionRequest):
        """The Table II view and narrative of the row with `features` (a counterfactual or the sliders)."""
        return await _intervention(body)

    @app.post("/intervention/print", response_class=HTMLResponse, responses=ERRORS)
    async def intervention_print(body: InterventionRequest):
        """The same intervention as a one-page printable HTML document."""
        return intervention_html(await _intervention(body), whatif.info())

    return app


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def serve(whatif: WhatIf, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn until interrupted (any Host header is served on a non-loopback address)."""
    app = create_app(whatif, None if is_loopback(host) else ["*"])
    uvicorn.run(app, host=host, port=port, log_level="warning")
