"""The README stays true: its example job runs, and its two set-up commands are what CI runs."""

import re

import numpy as np

from hpcdist.comm import world
from hpcdist.job import load_job
from hpcdist.runtime import RunOptions, run

from conftest import ROOT


def test_the_readme_example_job_runs_and_is_right(tmp_path):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"## Jobs.*?```python\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "example.py"
    path.write_text(code)
    res = run(load_job(str(path)), RunOptions(input="synthetic:rows=5000,cols=2,seed=3"), world()).results
    from hpcdist.sources.synthetic import SyntheticSource
    src = SyntheticSource(rows=5000, cols=2, seed=3)
    assert np.allclose(res["mean"], src.read(0, 5000, src.empty(5000)).mean(axis=0), rtol=1e-12)


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[mpich,test]'" in readme and "pip install --quiet -e '.[mpich,test]'" in ci
    assert "\npython -m pytest\n" in readme and "\npython -m pytest " in ci
