"""The Kubernetes Indexed Job and NetworkPolicy of deploy/k8s/grade-job.yaml, read statically."""
from __future__ import annotations

import re

import pytest
import yaml

import course_config as cfg
from autograder.grading.shards import parse_shard

MANIFEST = cfg.ROOT / "deploy" / "k8s" / "grade-job.yaml"
DOCKERFILE = cfg.ROOT / "deploy" / "Dockerfile"
INDEX = "$(JOB_COMPLETION_INDEX)"
pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def documents():
    return {doc["kind"]: doc for doc in yaml.safe_load_all(MANIFEST.read_text())}


@pytest.fixture(scope="module")
def job(documents):
    return documents["Job"]


@pytest.fixture(scope="module")
def container(job):
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_the_job_is_indexed(job):
    spec = job["spec"]
    assert job["apiVersion"] == "batch/v1"
    assert spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_each_pod_grades_its_shard_into_its_folder(job, container):
    args = container["args"]
    count = job["spec"]["completions"]
    assert args[:2] == ["grade", "/data/submissions"]
    assert option(args, "--shard") == f"{INDEX}/{count}", "the N of --shard must equal completions"
    assert option(args, "--out") == f"/data/out/shard-{INDEX}"
    # every index the Job hands out is a valid shard of the same count
    for index in range(count):
        assert parse_shard(option(args, "--shard").replace(INDEX, str(index))) == (index, count)


def test_the_completion_index_is_in_the_pod_environment(container):
    env = {item["name"]: item for item in container["env"]}
    field = env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert "batch.kubernetes.io/job-completion-index" in field


def test_pods_run_as_the_image_user_without_privileges(job, container):
    pod = job["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    uid = re.search(r"useradd --uid (\d+)", DOCKERFILE.read_text())
    assert uid and int(uid[1]) == pod["runAsUser"], "runAsUser must be the uid of `grader` in the Dockerfile"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def quantity(text) -> float:
    """A Kubernetes quantity ("4Gi", "1500Mi", "2", "500m") in bytes or cores."""
    number, unit = re.fullmatch(r"([\d.]+)(Ki|Mi|Gi|Ti|m|)", str(text)).groups()
    return float(number) * {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3, "": 1}[unit]


def test_resources_fit_one_pytorch_kernel(container):
    resources = container["resources"]
    limits, requests = resources["limits"], resources["requests"]
    # the pod holds the kernel the grader allows (course_config) and the cores its threads use
    assert quantity(limits["memory"]) >= cfg.KERNEL_MEMORY_MB * 2**20
    assert quantity(limits["cpu"]) >= cfg.KERNEL_THREADS
    assert 0 < quantity(requests["memory"]) <= quantity(limits["memory"])
    assert 0 < quantity(requests["cpu"]) <= quantity(limits["cpu"])
    assert "nvidia.com/gpu" not in resources["limits"], "the GPU stays optional (commented out)"
    assert "# nvidia.com/gpu: 1" in MANIFEST.read_text()


def test_submissions_and_output_share_one_claim(job, container):
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data/submissions"]["readOnly"] is True
    assert mounts["/data/submissions"]["name"] == mounts["/data/out"]["name"]
    assert "persistentVolumeClaim" in volumes[mounts["/data/out"]["name"]]
    # the root filesystem is read-only: every place the grader writes is a volume
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"/home/grader", "/tmp"} <= set(mounts)


def test_a_network_policy_denies_the_pods_all_egress(documents, job):
    policy = documents["NetworkPolicy"]["spec"]
    assert "Egress" in policy["policyTypes"] and policy.get("egress", []) == []
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()


def test_the_readme_applies_this_manifest_and_merges_what_its_pods_write(container):
    readme = (MANIFEST.parent / "README.md").read_text()
    applied = re.findall(r"kubectl apply -f (\S+\.yaml)", readme)
    assert applied and all((cfg.ROOT / path).resolve() == MANIFEST.resolve() for path in applied), applied
    # the merge reads every folder the Job's pods write into: their --out with the index as a glob
    shards = option(container["args"], "--out").replace(INDEX, "*")
    merges = re.findall(r"entrypoint\.sh merge (\S+) --out", readme)
    assert merges and set(merges) == {shards}, (merges, shards)
