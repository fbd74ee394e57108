"""Exit codes of `python -m sensecf` (0 success, 1 nothing found / all requests failed, 2 usage or data error,
130 Ctrl-C), always without a traceback."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time

import pytest

SENSECF = [sys.executable, "-m", "sensecf"]
ROW = "11"  # a test-split row of uci-heart (seed 0)


def sensecf(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*SENSECF, *args], capture_output=True, text=True, timeout=timeout)


def closed_port_url() -> str:
    """A loopback URL where nothing listens: every request fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def llm(url: str) -> list[str]:
    return ["--option", "backend=openai:m", "--option", f"base_url={url}", "--option", "max_retries=0"]


@pytest.mark.parametrize("args, message", [(["benchmark", "--bogus"], "No such option: --bogus"),
                                           (["benchmark"], "Missing option '--out'")])
def test_usage_errors_exit_2_without_traceback(args, message):
    res = sensecf(*args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_explain_without_counterfactual_exits_1():
    res = sensecf("explain", "--data", "uci-heart", "--row", ROW, "--method", "llm-zero-shot", *llm(closed_port_url()))
    assert res.returncode == 1, res.stderr[-2000:]
    assert "found no counterfactual" in res.stdout and "Traceback" not in res.stderr


def test_benchmark_whose_requests_all_failed_exits_1(tmp_path):
    res = sensecf("benchmark", "--data", "uci-heart", "--methods", "llm-zero-shot", "--n", "2", "--out",
                  str(tmp_path / "b"), *llm(closed_port_url()))
    assert res.returncode == 1, res.stderr[-2000:]
    assert "no counterfactual at all from llm-zero-shot" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "b" / "benchmark.json").exists()  # the results are written all the same


def test_remote_server_is_refused_before_any_work(tmp_path):
    res = sensecf("benchmark", "--methods", "llm-zero-shot", "--out", str(tmp_path / "b"),
                  *llm("http://10.255.255.1:8000/v1"))
    assert res.returncode == 2 and "refusing to send data" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "b").exists()


def test_missing_optional_package_names_the_install_command():
    code = ("import sys; sys.modules['nice'] = None; from sensecf.cli import main; "
            f"sys.argv = ['sensecf', 'explain', '--data', 'uci-heart', '--row', '{ROW}', '--method', 'nice-sparsity']; "
            "main()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "pip install --no-deps nicex==0.2.3" in res.stderr and "Traceback" not in res.stderr


def test_ctrl_c_exits_130_at_once(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        proc = subprocess.Popen([*SENSECF, "explain", "--data", "uci-heart", "--row", ROW, "--method",
                                 "llm-zero-shot", *llm(url)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            assert select.select([silent], [], [], 90)[0], "the request never arrived"
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            start = time.perf_counter()
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130 and time.perf_counter() - start < 5
    assert "stopped; finished work is kept" in err and "Traceback" not in err


def test_the_exit_1_rule_needs_no_cf_at_all_and_backend_errors(tmp_path):
    import typer

    from sensecf.cli.options import exit_if_only_backend_errors

    (tmp_path / "cfs").mkdir()
    rows = {"dead": [("failed", "backend error: prompt 0: refused")] * 2,
            "partly": [("failed", "backend error: prompt 0: refused"), ("invalid", "prediction did not flip")],
            "no-llm": [("failed", "no counterfactual found")] * 2}
    for method, table in rows.items():
        lines = ["factual_id,status,reason"] + [f"{i},{s},{r}" for i, (s, r) in enumerate(table)]
        (tmp_path / "cfs" / f"{method}.csv").write_text("\n".join(lines) + "\n")
    exit_if_only_backend_errors(tmp_path, ["partly", "no-llm", "not-run"])  # no exit
    with pytest.raises(typer.Exit) as done:
        exit_if_only_backend_errors(tmp_path, list(rows))
    assert done.value.exit_code == 1
