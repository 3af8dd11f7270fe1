"""The quickstart notebook runs top to bottom on the embedded model, offline, in a real kernel.

The kernel is ipykernel on this interpreter, whatever `python3` kernelspecs the machine has
registered elsewhere; it gets private caches (a fresh export of xdepth-tiny, an empty Hugging
Face cache, so a locally present large model is not picked up) and refuses network
connections. Any cell that raises fails the test.
"""

from __future__ import annotations

import base64
import io
import re
import sys
from pathlib import Path

import av
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from PIL import Image

from xdepth.model.cache import native_precisions

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
# A hung cell fails the test instead of blocking the suite; not a speed requirement.
CELL_TIMEOUT_S = 600
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
OFFLINE_CELL = """\
import socket


def _refuse(*args, **kwargs):
    raise OSError(f"network access attempted: {args}")


socket.socket.connect = socket.socket.connect_ex = _refuse
socket.create_connection = socket.getaddrinfo = _refuse
"""


def kernel_manager() -> AsyncKernelManager:
    """ipykernel's own `python3` spec, launched with sys.executable.

    Searching no kernel folders leaves jupyter_client only the spec of the ipykernel it can
    import, which runs this interpreter, so the kernel sees the same installed xdepth.
    """
    return AsyncKernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
    )


def notebook_client(nb: nbformat.NotebookNode) -> NotebookClient:
    """nbclient on `nb`, running in the notebook's folder, without Output-widget mimicry.

    To mimic a frontend, nbclient answers Output widgets (ipywidgets' interact, rich's
    progress) on the shell channel while it awaits the cell's reply there; that send can
    swallow the reply's wake-up, and the cell then waits out the whole timeout. Left alone,
    the widgets' outputs simply stay in the cell's outputs, where the test can see them.
    """
    client = NotebookClient(
        nb,
        km=kernel_manager(),
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.comm_open_handlers["jupyter.widget"] = lambda msg: None
    return client


def cell(nb: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.get("id") == cell_id)


def png_sizes(code_cell: nbformat.NotebookNode) -> list[tuple[int, int]]:
    """(width, height) of every PNG the cell displayed."""
    sizes = []
    for output in code_cell.outputs:
        data = output.get("data", {}).get("image/png")
        if data:
            with Image.open(io.BytesIO(base64.b64decode(data))) as picture:
                sizes.append(picture.size)
    return sizes


def embedded_video_frames(code_cell: nbformat.NotebookNode) -> list[tuple[int, int]]:
    """(height, width) of every frame of the MP4 the cell embedded in its HTML output."""
    html = "".join(o.get("data", {}).get("text/html", "") for o in code_cell.outputs)
    found = re.search(r'src="data:video/mp4;base64,([A-Za-z0-9+/=\s]+)"', html)
    assert found, "no embedded MP4"
    with av.open(io.BytesIO(base64.b64decode(found.group(1)))) as container:
        return [(f.height, f.width) for f in container.decode(video=0)]


@pytest.fixture
def private_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches under tmp_path for the kernel (it inherits this environment)."""
    for name, folder in {
        "XDEPTH_ARTIFACTS": "artifacts",
        "XDEPTH_CACHE": "ov-cache",
        "HF_HUB_CACHE": "hf-hub",
        "IPYTHONDIR": "ipython",
        "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
        "MPLCONFIGDIR": "matplotlib",
    }.items():
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("XDEPTH_BENCH_RESULTS", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend, not Agg


def test_kernel_runs_this_interpreter() -> None:
    assert kernel_manager().kernel_spec.argv[0] == sys.executable


def test_quickstart_runs_and_shows_its_pictures(private_environment: None) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(OFFLINE_CELL))
    notebook_client(nb).execute()  # raises CellExecutionError at the first failing cell

    # The precision auto measured fastest on this CPU (under load it can be any native one).
    said = "".join(o.get("text", "") for o in cell(nb, "export").outputs)
    chosen = re.search(r"xdepth-tiny: openvino (f32|bf16|int8)", said)
    assert chosen and chosen.group(1) in native_precisions()
    assert any(WIDGET_VIEW in o.get("data", {}) for o in cell(nb, "run").outputs)  # tqdm widget
    assert png_sizes(cell(nb, "show")) == [(3 * 256, 192)] * 4  # image | depth | cutout
    assert png_sizes(cell(nb, "mask")) == [(2 * 256, 192)]
    assert png_sizes(cell(nb, "policies")) == [(4 * 256, 192)]
    slider = cell(nb, "slider").outputs
    assert png_sizes(cell(nb, "slider")) == [(3 * 256, 192)]  # the clip at the initial level
    assert any(WIDGET_VIEW in o.get("data", {}) for o in slider)
    said = "".join(o.get("text", "") for o in cell(nb, "video").outputs)
    assert said.startswith("1 video (24 frames): 1 ok, 0 failed"), said
    assert embedded_video_frames(cell(nb, "video")) == [(192, 256)] * 24  # the clip's frames
    assert len(png_sizes(cell(nb, "bench"))) == 1  # the throughput-fidelity figure


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells
    for code_cell in code_cells:
        assert code_cell.outputs == [], f"cell {code_cell.id} has outputs"
        assert code_cell.execution_count is None, f"cell {code_cell.id} has an execution count"
    assert "widgets" not in nb.metadata  # no saved widget state
