"""A notebook kernel started by the Jupyter server finds pai_lab with no configuration."""

import asyncio
import json

from jupyter_client import AsyncKernelClient


async def _run_in_kernel(connection_file: str, code: str, timeout: float = 60) -> str:
    client = AsyncKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.start_channels()
    try:
        for attempt in range(3):
            try:
                await client.wait_for_ready(timeout=timeout)
                break
            except RuntimeError:  # on a loaded machine the first heartbeats can be late: "died" too early
                if attempt == 2:
                    raise
                await asyncio.sleep(2)
        msg_id = client.execute(code)
        out = []
        while True:
            msg = await client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)
    finally:
        client.stop_channels()


async def test_kernel_connects_to_the_server_it_runs_under(api, jp_serverapp, jp_fetch, monkeypatch):
    for var in ("PAI_LAB_URL", "PAI_LAB_TOKEN", "PAI_LAB_ROOT"):
        monkeypatch.delenv(var, raising=False)
    resp = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel_id = json.loads(resp.body)["id"]
    km = jp_serverapp.kernel_manager.get_kernel(kernel_id)
    code = (
        "import pai_lab\nws = pai_lab.connect()\nprint(ws.name, ws.client.me().username)\n"
        "print(ws.members.list()[0].roles)\n"
    )
    try:
        out = await _run_in_kernel(km.connection_file, code)
    finally:
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
    assert "default owner" in out, out
    assert "['Owner']" in out
