"""A run's output in a bucket registers as a dataset that is read with the workspace's storage options
(its endpoint and credentials, set with ``set_storage``), on a moto S3 server: from the run's outputs
(``ArchivedArtifact.register_dataset``, the run panel's Register) and from the ``register_dataset`` step."""

from __future__ import annotations

from pai_lab.pipelines import MetadataBuilder, Pipeline, PipelineArtifact, PipelineStep, ProviderAlibabaPAI, component


def test_an_s3_output_registers_as_a_dataset_read_with_the_workspaces_storage_options(
    live_server, unique_name, s3_server, s3_bucket, monkeypatch
):
    monkeypatch.setenv("PAI_LAB_URL", live_server.url)  # the platform step is looked up on the server
    monkeypatch.setenv("PAI_LAB_TOKEN", live_server.token)
    bucket, options = s3_bucket
    ws = live_server.client().create_workspace(unique_name("s3out"))
    ws.set_storage(
        f"s3://{bucket}/models", {"endpoint_url": s3_server, "key": options["key"], "secret": options["secret"]}
    )

    @component(outputs=[PipelineArtifact("parts", MetadataBuilder.fs_dataset())])
    def write_parts():
        import s3fs  # the step's own credentials; the server registers with the workspace's

        fs = s3fs.S3FileSystem(key=options["key"], secret=options["secret"], client_kwargs=options["client_kwargs"])
        for i in range(3):
            fs.pipe(f"{bucket}/runs/parts/part-{i}.csv", f"x,y\n{i},{i * i}\n".encode())
        return {"location": {"uri": f"s3://{bucket}/runs/parts/"}}

    made = write_parts.as_step(name="write")
    register = PipelineStep(
        "register_dataset",
        provider=ProviderAlibabaPAI,
        name="register",
        inputs={"inputArtifact": made.outputs["parts"], "name": "parts_by_step"},
    )
    run = ws.pipelines.run(Pipeline(steps=[register]), cache=False, wait=True, show_outputs=False, timeout=300)
    assert run.detail.status == "Succeeded", run.detail.reason

    (parts,) = run.get_outputs(name="parts")
    assert parts.uri == f"s3://{bucket}/runs/parts/"
    action = parts.register_dataset("parts_by_hand")
    assert (action.kind, action.version, action.lineage.step) == ("dataset", "1", "write")
    for name in ("parts_by_hand", "parts_by_step"):  # the server listed the bucket with the workspace's options
        dataset = ws.datasets.get(name)
        items = sorted((item.source, item.size) for item in dataset.items())
        assert items == [(f"s3://{bucket}/runs/parts/part-{i}.csv", len(f"x,y\n{i},{i * i}\n")) for i in range(3)]
        shown = dataset.info.storage_options
        assert shown["secret"] == "***" and s3_server in str(shown)  # kept with the dataset, secret masked
