"""deployments/: `prefect deploy --all` registers every deployment; the GPU job template."""

from __future__ import annotations

import importlib.util

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

from .conftest import REPO_ROOT


def load_gpu_job_template_module():
    spec = importlib.util.spec_from_file_location("gpu_job_template", REPO_ROOT / "deployments" / "gpu_job_template.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gpu_job_template_is_accepted_by_the_server_and_requests_gpus():
    default = run_coro_as_sync(get_default_base_job_template_for_infrastructure_type("kubernetes"))
    template = load_gpu_job_template_module().add_gpu_request(default, default_gpus=2)
    with get_client(sync_client=True) as client:
        # The server validates that every placeholder names a declared variable.
        client.create_work_pool(WorkPoolCreate(name="k8s-gpu", type="kubernetes", base_job_template=template))
        pool = client.read_work_pool("k8s-gpu")
    pod = pool.base_job_template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"
    assert pool.base_job_template["variables"]["properties"]["gpu_count"]["default"] == 2
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "nvidia.com/gpu" not in str(default)  # the input template was left as it was


def test_prefect_deploy_all_registers_every_deployment_with_its_schedule(deployed, tmp_path_factory):
    config = yaml.safe_load((REPO_ROOT / "deployments" / "prefect.yaml").read_text())
    expected = {entry["name"]: entry for entry in config["deployments"]}
    with get_client(sync_client=True) as client:
        found = {d.name: d for d in client.read_deployments() if d.name in expected}
        flow_names = {d.name: client.read_flow(d.flow_id).name for d in found.values()}
    assert flow_names == {"nightly": "dark-data", "hourly": "scan-store", "gpu": "train-dataset",
                          "cpu": "export-dataset"}
    for name, deployment in found.items():
        assert deployment.work_pool_name == expected[name]["work_pool"]["name"]
        crons = [schedule.schedule.cron for schedule in deployment.schedules]
        assert crons == [s["cron"] for s in expected[name].get("schedules", [])]
        # parameters mirror the flow signatures: every one is a parameter of the flow
        assert set(deployment.parameters) <= set(deployment.parameter_openapi_schema["properties"])
    assert found["nightly"].parameters["train_work_pool"] == "gpu"
    assert found["nightly"].parameters["store_url"].endswith("store")  # {{ $GAN_AUGMENT_STORE }} resolved
    assert found["gpu"].parameters["model"]["image_size"] == 64
    assert found["gpu"].job_variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "gan_augment"
