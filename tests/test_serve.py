"""`sensecf serve`: run-folder loading, the JSON API (TestClient), scoring under a slow counterfactual (real
uvicorn), the CLI, and the page in headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time

import httpx
import markupsafe
import numpy as np
import pandas as pd
import pytest
import uvicorn
from fastapi.testclient import TestClient

from sensecf.data.loading import load_dataset
from sensecf.data.split import patient_split
from sensecf.errors import ConfigError, DataError
from sensecf.experiments.benchmark import run_benchmark
from sensecf.experiments.intervention import intervention_view, narrative
from sensecf.generators.base import available_methods
from sensecf.models.classifiers import Classifier, train_classifier
from sensecf.serve.app import create_app, is_loopback
from sensecf.serve.run_folder import load_run
from sensecf.serve.whatif import WhatIf

RUN_METHODS = ["nice-sparsity", "nice-proximity"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder on the real UCI heart data (as CSV + schema, cholesterol allowed only to decrease): schema.yaml,
    train.csv, test.csv, model.pkl (lr), run.json, cfs/<NICE>.csv for 3 factuals per class."""
    d = tmp_path_factory.mktemp("run")
    heart = load_dataset("uci-heart")
    heart.schema["cholesterol"].better, heart.schema["cholesterol"].direction = None, "decrease"
    heart.schema.to_yaml(d / "schema.yaml")
    heart.frame.to_csv(d / "heart.csv", index=False)
    ds = load_dataset(str(d / "heart.csv"), schema=d / "schema.yaml")
    train, test = patient_split(ds, test_size=0.2, seed=0)
    clf = train_classifier("lr", train.X, train.y, ds.schema, 0)
    clf.save(d / "model.pkl")
    train.frame.to_csv(d / "train.csv")
    test.frame.to_csv(d / "test.csv")
    (d / "run.json").write_text(json.dumps({"config": {"data": str(d / "heart.csv"), "schema": str(d / "schema.yaml"),
                                                       "seed": 0, "options": {"cfnow_time_limit": 3}}}))
    run_benchmark(train, test, clf, RUN_METHODS, n_per_class=3, seed=0, out_dir=d)
    return d


@pytest.fixture(scope="module")
def whatif(run_dir):
    return WhatIf(load_run(run_dir))


@pytest.fixture(scope="module")
def client(whatif):
    with TestClient(create_app(whatif), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def clf(run_dir):
    return Classifier.load(run_dir / "model.pkl")


def _p1(clf, row: dict) -> float:
    return float(clf.predict_proba(pd.DataFrame([row]))[0, 1])


def _cf_row(whatif) -> str:
    """The row with run counterfactuals whose P(class 1) is closest to 0.5 (edits visibly move it)."""
    ids = sorted(set().union(*(t.index for t in whatif.ws.cfs.values())))
    return min(ids, key=lambda i: abs(whatif.proba[i] - 0.5))


# ---- run folder ------------------------------------------------------------------------------------------------
def test_run_folder_reads_the_studys_files(run_dir, tmp_path):
    ws = load_run(run_dir)
    ds = load_dataset(str(run_dir / "heart.csv"), schema=run_dir / "schema.yaml")
    _, test = patient_split(ds, test_size=0.2, seed=0)
    assert list(ws.test.index) == [str(i) for i in test.X.index]
    assert sorted(ws.cfs) == sorted(RUN_METHODS) and ws.options["cfnow_time_limit"] == 3
    assert set(ws.cfs["nice-sparsity"].index) <= set(ws.test.index)

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    ws.test.iloc[:40].assign(heart_disease=0).to_csv(copy / "test.csv")
    with pytest.raises(DataError, match="not rows of this run's test split.*nice-proximity.csv"):
        load_run(copy)  # 40 test rows do not hold every factual: a mixed-up folder is refused
    (copy / "train.csv").unlink()
    with pytest.raises(ConfigError, match="lacks train.csv"):
        load_run(copy)
    with pytest.raises(ConfigError, match="no model.pkl"):
        load_run(tmp_path)


# ---- API: rows and scoring ---------------------------------------------------------------------------------------
def test_patients_list_filters_and_probabilities(client, whatif, clf):
    rows = client.get("/patients", params={"limit": 1000}).json()
    assert len(rows) == len(whatif.ws.test)
    expected = clf.predict_proba(whatif.ws.test)[:, 1]
    by_id = {r["id"]: r for r in rows}
    for rid, p in zip(whatif.ws.test.index, expected):
        assert by_id[rid]["probability"] == pytest.approx(p, abs=1e-12)
        assert by_id[rid]["predicted_class"] == int(p > 0.5)
    with_cfs = set(whatif.ws.cfs["nice-sparsity"].index)
    assert {r["id"] for r in rows[:len(with_cfs)]} == with_cfs  # rows with counterfactuals come first
    assert {r["id"] for r in client.get("/patients?with_counterfactuals=true").json()} == with_cfs

    ones = client.get("/patients", params={"predicted_class": 1, "min_probability": 0.9, "limit": 1000}).json()
    assert ones and all(r["predicted_class"] == 1 and r["probability"] >= 0.9 for r in ones)
    assert len(ones) == int((expected >= 0.9).sum())
    rid = rows[0]["id"]
    assert rid in [r["id"] for r in client.get("/patients", params={"q": rid}).json()]
    assert client.get("/patients", params={"max_probability": 2}).status_code == 422


def test_patient_shows_values_fixed_features_bounds_and_run_counterfactuals(client, whatif):
    rid = _cf_row(whatif)
    p = client.get(f"/patients/{rid}").json()
    factual = whatif.ws.test.loc[rid]
    assert p["features"] == {k: (str(v) if isinstance(v, str) else float(v)) for k, v in factual.items()}
    assert p["fixed"] == ["age", "sex"] and "age" not in p["bounds"] and "age" not in p["directions"]
    assert p["directions"]["cholesterol"] == "decrease" and p["bounds"]["cholesterol"][1] == factual["cholesterol"]
    assert p["target_class"] == 1 - p["predicted_class"]
    for name, (lo, hi) in p["bounds"].items():
        spec, (tlo, thi) = whatif.schema[name], whatif.ranges[name]
        assert lo <= factual[name] <= hi
        assert lo >= min(max(tlo, spec.bounds[0]), factual[name]) and hi <= max(min(thi, spec.bounds[1]), factual[name])
    cfs = {c["method"]: c for c in p["counterfactuals"]}
    assert set(cfs) == set(RUN_METHODS) and {c["source"] for c in cfs.values()} == {"run"}
    table = whatif.ws.cfs["nice-sparsity"].loc[rid]
    cf = cfs["nice-sparsity"]
    assert cf["status"] == table["status"] and cf["features"]["max_hr"] == table["max_hr"]
    if cf["status"] == "valid":
        assert cf["metrics"]["sparsity"] == len(cf["changed"]) and cf["metrics"]["distance"] > 0
    assert client.get("/patients/no-such-row").status_code == 404


def test_score_equals_the_classifier(client, whatif, clf):
    rng = np.random.default_rng(0)
    for rid in whatif.ws.test.index[:8]:
        p = client.get(f"/patients/{rid}").json()
        edit = {name: float(rng.integers(np.ceil(lo), np.floor(hi) + 1)) if whatif.schema[name].kind == "integer"
                else float(rng.uniform(lo, hi)) for name, (lo, hi) in p["bounds"].items()}
        edit["st_slope"] = "down"
        r = client.post("/score", json={"id": rid, "features": edit})
        assert r.status_code == 200, r.text
        assert r.json()["probability"] == pytest.approx(_p1(clf, {**p["features"], **edit}), abs=1e-12)
        assert r.json()["predicted_class"] == int(r.json()["probability"] > 0.5)


@pytest.mark.parametrize("features, field, message", [
    ({"age": 30}, "age", "immutable"),
    ({"sex": "__other__"}, "sex", "takes one of"),
    ({"resting_bp": 300}, "resting_bp", "above the upper bound 220"),
    ({"max_hr": 20}, "max_hr", "below the lower bound 60"),
    ({"cholesterol": "+1"}, "cholesterol", "takes a finite number"),
    ({"resting_bp": 120.5}, "resting_bp", "whole numbers"),
    ({"oldpeak": True}, "oldpeak", "takes a finite number"),
    ({"chest_pain_type": 3}, "chest_pain_type", "takes one of"),
    ({"heart_rate": 80}, "heart_rate", "unknown feature"),
])
def test_score_rejects_bad_values_naming_the_feature(client, whatif, features, field, message):
    rid = whatif.ws.test.index[0]
    r = client.post("/score", json={"id": rid, "features": features})
    assert r.status_code == 422 and r.json()["field"] == field and message in r.json()["detail"], r.text
    assert f"'{field}'" in r.json()["detail"]


def test_score_enforces_directions_and_flags_implausible_values(client, whatif):
    rid = whatif.ws.test.index[0]
    chol = float(whatif.ws.test.loc[rid, "cholesterol"])
    r = client.post("/score", json={"id": rid, "features": {"cholesterol": chol + 10}})
    assert r.status_code == 422 and r.json()["field"] == "cholesterol" and "may only decrease" in r.json()["detail"]
    assert client.post("/score", json={"id": rid, "features": {"cholesterol": chol - 10}}).status_code == 200
    above = whatif.ranges["max_hr"][1] + 5  # inside the clinical bounds (60-220), outside the training range
    r = client.post("/score", json={"id": rid, "features": {"max_hr": above}})
    assert r.status_code == 200 and r.json()["implausible"] == ["max_hr"]


def test_bad_requests_get_clear_4xx_messages(client, whatif):
    r = client.post("/score", content=b'{"id": "1", "features": {', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("malformed JSON body")
    r = client.post("/score", json={"features": {}})
    assert r.status_code == 422 and r.json() == {"detail": "id: Field required", "field": "id"}
    r = client.post("/score", json={"id": "no-such-row", "features": {}})
    assert r.status_code == 404 and "not a test row" in r.json()["detail"]
    r = client.post("/score", json={"id": whatif.ws.test.index[0], "features": {}, "extra": 1})
    assert r.status_code == 422 and r.json()["field"] == "extra"
    assert client.get("/info", headers={"host": "attacker.example"}).status_code == 400  # DNS rebinding


# ---- API: counterfactuals and interventions ----------------------------------------------------------------------
def test_unknown_method_lists_the_valid_ones(client, whatif):
    r = client.post("/counterfactuals", json={"id": whatif.ws.test.index[0], "method": "magic"})
    assert r.status_code == 422 and r.json()["field"] == "method"
    assert all(m in r.json()["detail"] for m in available_methods())
    assert client.get("/info").json()["methods"] == sorted(set(available_methods()) | set(RUN_METHODS))


def test_new_nice_counterfactual_is_verified_and_kept(client, whatif, clf):
    rid = next(i for i in whatif.ws.test.index if i not in whatif.ids_with_counterfactuals())
    r = client.post("/counterfactuals", json={"id": rid, "method": "nice-sparsity", "options": {}})
    assert r.status_code == 200, r.text
    cf = r.json()
    factual = whatif.ws.test.loc[rid]
    assert cf["source"] == "new" and cf["status"] == "valid" and cf["violations"] == []
    assert cf["predicted_class"] == cf["target_class"] == 1 - int(whatif.proba[rid] > 0.5)
    assert cf["probability"] == pytest.approx(_p1(clf, cf["features"]), abs=1e-12)
    assert cf["changed"] == [n for n in whatif.schema.feature_names if cf["features"][n] != factual[n]]
    assert cf["metrics"]["validity"] == 1 and cf["metrics"]["sparsity"] == len(cf["changed"]) >= 1
    assert cf["metrics"]["distance"] > 0 and cf["seconds"] > 0
    levels = {n: whatif.schema[n].actionability for n in cf["changed"]}
    assert cf["actionability"] == levels
    assert cf["actionable_share"] == pytest.approx(np.mean([lv in ("high", "medium") for lv in levels.values()]))
    kept = client.get(f"/patients/{rid}").json()["counterfactuals"]
    assert [c["method"] for c in kept if c["source"] == "new"] == ["nice-sparsity"]
    assert client.get(f"/patients?with_counterfactuals=true&q={rid}").json()[0]["id"] == rid

    r = client.post("/counterfactuals", json={"id": rid, "method": "nice-sparsity", "options": {"allow_remote": True}})
    assert r.status_code == 422 and "server setting" in r.json()["detail"]


def test_intervention_narrative_and_printable_export(client, whatif, clf):
    rid = _cf_row(whatif)
    cf = next(c for c in client.get(f"/patients/{rid}").json()["counterfactuals"] if c["features"])
    r = client.post("/intervention", json={"id": rid, "features": cf["features"], "method": cf["method"]})
    assert r.status_code == 200, r.text
    doc = r.json()
    view = intervention_view(whatif.ws.test.loc[rid], pd.Series(cf["features"]), clf, whatif.schema)
    assert doc["view"] == json.loads(json.dumps(view)) and doc["narrative"] == narrative(view, whatif.schema)
    assert "llm_narrative" not in doc  # only on request
    html = client.post("/intervention/print", json={"id": rid, "features": cf["features"], "method": cf["method"]})
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    for line in doc["narrative"].splitlines():
        assert str(markupsafe.escape(line)) in html.text
    assert html.text.count('class="changed') == len(view["changes"]) and "@page" in html.text
    r = client.post("/intervention", json={"id": rid, "features": {"age": 1}})
    assert r.status_code == 422 and r.json()["field"] == "age"


# ---- real server: scoring stays responsive ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(run_dir):
    """uvicorn on 127.0.0.1 (free port) in a thread, over its own WhatIf (no CFs from the other tests)."""
    srv = uvicorn.Server(uvicorn.Config(create_app(WhatIf(load_run(run_dir))), host="127.0.0.1", port=0,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)


def test_scoring_answers_while_a_slow_counterfactual_runs(server, whatif):
    rid = whatif.ws.test.index[1]
    slow: dict = {}

    def ask():
        t0 = time.perf_counter()
        slow["response"] = httpx.post(f"{server}/counterfactuals", timeout=120, json={
            "id": rid, "method": "cfnow-greedy", "options": {"cfnow_time_limit": 3}})
        slow["seconds"] = time.perf_counter() - t0

    worker = threading.Thread(target=ask)
    worker.start()
    time.sleep(0.5)  # the request is in the server's generation worker by now
    t0 = time.perf_counter()
    latencies = []
    with httpx.Client(base_url=server, timeout=30) as http:
        for v in (0.0, 0.5, 1.0, 1.5, 2.0):
            t = time.perf_counter()
            r = http.post("/score", json={"id": rid, "features": {"oldpeak": v}})
            latencies.append(time.perf_counter() - t)
            assert r.status_code == 200
    scored_after = time.perf_counter() - t0 + 0.5
    worker.join(120)
    assert slow["response"].status_code == 200, slow["response"].text
    assert slow["seconds"] > scored_after, "the counterfactual finished before the scores: nothing was tested"
    assert max(latencies) < 1.0, latencies


# ---- CLI ---------------------------------------------------------------------------------------------------------
def test_cli_serves_a_dataset_without_a_run_on_loopback(tmp_path):
    from typer.testing import CliRunner

    from sensecf.cli import app

    res = CliRunner().invoke(app, ["serve", str(tmp_path), "--data", "uci-heart"])
    assert res.exit_code != 0 and "not both" in str(res.exception)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("0.0.0.0")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "sensecf", "serve", "--data", "uci-heart", "--classifier", "lr",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, info = time.monotonic() + 90, None
        while info is None and proc.poll() is None and time.monotonic() < deadline:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.3)
        assert info is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert info["classifier"] == "lr" and info["run_methods"] == [] and info["n_patients"] > 100
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["paths"].keys() >= {
            "/patients", "/patients/{pid}", "/score", "/counterfactuals"}
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}" in out and "warning" not in out


# ---- the page in a real browser -----------------------------------------------------------------------------------
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-extensions", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
    with sync_api.sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        except Exception as e:  # noqa: BLE001  (any launch failure means: no browser here)
            print(f"skipping the browser test: {chromium} cannot be launched: {e}")
            pytest.skip(f"no browser can be launched ({chromium}): {str(e).splitlines()[0]}")
        yield b
        b.close()


def test_page_scores_slider_moves_and_shows_a_new_nice_cf(browser, server, whatif, clf, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.evaluate("console.error('probe')")
    assert errors == ["probe"]  # the listener sees console errors
    errors.clear()

    rid = _cf_row(whatif)
    page.fill("#search", rid)
    page.click(f'#patients button[data-id="{rid}"]')
    page.wait_for_selector('#features tr[data-feature="max_hr"] input[type=range]')
    prob = page.locator("#probability")
    assert prob.inner_text() == f"{whatif.proba[rid]:.3f}"
    assert page.locator('#features tr[data-feature="age"] input').is_disabled()  # fixed features are locked
    assert page.locator("#cfs th.cf").count() == len(RUN_METHODS)

    before = prob.inner_text()
    slider = page.locator('#features tr[data-feature="max_hr"] input[type=range]')
    slider.focus()
    slider.press("Home")  # the lowest heart rate the slider allows
    page.wait_for_function(f"document.getElementById('probability').textContent !== '{before}'")
    value = float(slider.input_value())
    features = {**{k: (v if isinstance(v, str) else float(v)) for k, v in whatif.ws.test.loc[rid].items()},
                "max_hr": value}
    api = httpx.post(f"{server}/score", json={"id": rid, "features": features}).json()
    assert value < whatif.ws.test.loc[rid, "max_hr"]
    page.wait_for_function(f"document.getElementById('probability').textContent === '{api['probability']:.3f}'")
    assert api["probability"] == pytest.approx(_p1(clf, features), abs=1e-12)

    page.select_option("#method", "nice-sparsity")
    page.evaluate("""() => { window.sawProgress = false; new MutationObserver(() => {
        if (document.querySelector('#cfs th.cf.pending .src') && document.querySelector('#cfs .spinner'))
            window.sawProgress = true;
    }).observe(document.getElementById('cfs'), {childList: true, subtree: true}); }""")
    page.click("#generate")
    new = page.wait_for_selector('#cfs th.cf[data-source="new"][data-method="nice-sparsity"]', timeout=60000)
    assert "new" in new.inner_text() and "valid" in page.locator("#progress").inner_text()
    assert page.evaluate("window.sawProgress")  # a pending column with a spinner was shown while it ran
    cf = next(c for c in httpx.get(f"{server}/patients/{rid}").json()["counterfactuals"] if c["source"] == "new")
    column = len(RUN_METHODS)  # the new CF's buttons are in its own column
    page.locator("#cfs button.load").nth(column).click()
    page.wait_for_function(f"document.getElementById('probability').textContent === '{cf['probability']:.3f}'")
    page.locator("#cfs button.select").nth(column).click()
    doc = httpx.post(f"{server}/intervention", json={"id": rid, "features": cf["features"],
                                                     "method": "nice-sparsity"}).json()
    page.wait_for_function("document.getElementById('narrative').textContent.startsWith('Condition')")
    assert page.locator("#narrative").inner_text() == doc["narrative"]

    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(download.value.path().read_text())
    assert exported["narrative"] == doc["narrative"] and exported["view"] == doc["view"]
    with page.expect_popup() as popup:
        page.click("#export-html")
    popup.value.wait_for_function("document.title.startsWith('Intervention')")
    assert "Counterfactual intervention" in popup.value.inner_text("h1")

    page.locator("#narrative-section").scroll_into_view_if_needed()
    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    assert errors == []


def test_actionability_of_the_schema_is_shown(run_dir):
    ws = load_run(run_dir)
    level = {f.name: f.actionability for f in ws.schema.features}
    w = WhatIf(ws)
    assert {f["name"]: f["actionability"] for f in w.info()["features"]} == level
    cfs = [c for rid in sorted(w.ids_with_counterfactuals()) for c in w.patient(rid)["counterfactuals"] if c["changed"]]
    assert cfs
    for cf in cfs:
        assert cf["actionability"] == {n: level[n] for n in cf["changed"]}
        assert cf["actionable_share"] == pytest.approx(np.mean([ws.schema[n].actionable for n in cf["changed"]]))
