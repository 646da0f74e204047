"""deployments/: `prefect deploy --all` registers every deployment, its schedules and its event
trigger; the GPU job template."""

from __future__ import annotations

import importlib.util
import json
import os
import time

import yaml
from kubernetes.client import ApiClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.events import emit_event
from prefect.utilities.asyncutils import run_coro_as_sync
from prefect.utilities.templating import apply_values
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


def test_the_gpu_job_template_renders_a_job_that_matches_the_kubernetes_job_schema():
    """The job manifest a worker of the pool would submit (the template's placeholders filled
    with the variables' defaults and an image) read into the Kubernetes client's V1Job model:
    required fields present, types right, and nothing dropped on the way, which a misspelt or
    misplaced field would be (the model keeps only the fields of the schema)."""
    default = run_coro_as_sync(get_default_base_job_template_for_infrastructure_type("kubernetes"))
    template = load_gpu_job_template_module().add_gpu_request(default)
    values = {name: spec["default"] for name, spec in template["variables"]["properties"].items() if "default" in spec}
    # the worker hands `env` to the manifest as Kubernetes' list of name/value pairs
    values.update(image="registry.example/gan-augment:1", name="nightly-run", namespace="ml",
                  env=[{"name": "PREFECT_LOGGING_EXTRA_LOGGERS", "value": "gan_augment"}])
    manifest = apply_values(template["job_configuration"]["job_manifest"], values, remove_notset=True)
    limits = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": 1}
    # The API server reads a Quantity from a JSON number or string; the client's model takes strings.
    limits["nvidia.com/gpu"] = "1"
    api = ApiClient()
    job = api.deserialize(json.dumps(manifest), "V1Job", None)
    pod = job.spec.template.spec
    assert (job.api_version, job.kind) == ("batch/v1", "Job")
    assert (job.spec.parallelism, job.spec.completions) == (1, 1)  # moved out of the pod spec
    assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}  # gpu_count's default
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert api.sanitize_for_serialization(job) == manifest


def test_prefect_deploy_all_registers_every_deployment_with_its_schedule(deployed, tmp_path_factory):
    config = yaml.safe_load((REPO_ROOT / "deployments" / "prefect.yaml").read_text())
    expected = {entry["name"]: entry for entry in config["deployments"]}
    with get_client(sync_client=True) as client:
        found = {d.name: d for d in client.read_deployments() if d.name in expected}
        flow_names = {d.name: client.read_flow(d.flow_id).name for d in found.values()}
    assert flow_names == {"nightly": "dark-data", "hourly": "scan-store", "on-new-objects": "scan-store",
                          "gpu": "train-dataset", "cpu": "export-dataset"}
    for name, deployment in found.items():
        assert deployment.work_pool_name == expected[name]["work_pool"]["name"]
        crons = [schedule.schedule.cron for schedule in deployment.schedules]
        assert crons == [s["cron"] for s in expected[name].get("schedules", [])]
        # parameters mirror the flow signatures: every one is a parameter of the flow
        assert set(deployment.parameters) <= set(deployment.parameter_openapi_schema["properties"])
    assert found["nightly"].parameters["train_work_pool"] == "gpu"
    assert found["nightly"].parameters["store_url"].endswith("store")  # {{ $GAN_AUGMENT_STORE }} resolved
    # locations and site choices only: the recipe is the library's default (BENCHMARKS.md)
    assert set(found["gpu"].parameters["model"]) == {"image_size", "channels"}
    assert set(found["gpu"].parameters["training"]) == {"max_seconds"}
    assert found["nightly"].parameters["model"] == found["gpu"].parameters["model"]
    assert found["gpu"].job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert found["gpu"].job_variables["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "gan_augment"


def test_new_objects_trigger_a_scan_of_their_dataset(deployed, tmp_path_factory, png_writer):
    """The event trigger of `on-new-objects`, registered by `prefect deploy`, run by the test
    server: an event about a dataset of the deployed store starts a scan of that dataset."""
    with get_client(sync_client=True) as client:
        deployment = next(d for d in client.read_deployments() if d.name == "on-new-objects")
        automations = [a for a in client.read_automations()
                       if any(getattr(action, "deployment_id", None) == deployment.id for action in a.actions)]
    assert deployment.schedules == [] and deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    (automation,) = automations
    store = deployment.parameters["store_url"]  # {{ $GAN_AUGMENT_STORE }}, resolved when deploying
    assert automation.trigger.expect == {"gan-augment.objects.added"}
    assert automation.trigger.match.model_dump() == {"prefect.resource.id": "gan-augment.dataset.*",
                                                     "gan-augment.store": store}
    png_writer(os.path.join(store, "cats"), 2)

    def runs_of_the_deployment() -> list:
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))

    emit_event("gan-augment.objects.added", resource={"prefect.resource.id": "gan-augment.dataset.cats",
                                                      "gan-augment.store": "s3://another-store/",
                                                      "gan-augment.dataset": "cats"})
    emit_event("gan-augment.objects.added", resource={"prefect.resource.id": "gan-augment.dataset.cats",
                                                      "gan-augment.store": store, "gan-augment.dataset": "cats"})
    for _ in range(240):  # bounded wait for the server's trigger (not a timing assertion)
        if runs := runs_of_the_deployment():
            break
        time.sleep(0.5)
    assert [run.parameters["datasets"] for run in runs] == [["cats"]]  # one run: the other store's event is ignored
    assert runs[0].parameters["store_url"] == store
