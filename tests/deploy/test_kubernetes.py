"""deploy/kubernetes.yaml, checked without a cluster: every object against the Kubernetes API schemas that
kubernetes-validate ships, and the links between them that a schema cannot see."""

import kubernetes_validate
import pytest
import yaml
from sample_data import ROOT

MANIFESTS = ROOT / "deploy" / "kubernetes.yaml"
# The newest Kubernetes version the validator ships, and an older one a cluster may still run.
VERSIONS = ["1.33.0", "1.37.0"]


def objects() -> dict[str, dict]:
    return {document["kind"]: document for document in yaml.safe_load_all(MANIFESTS.read_text())}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_kubernetes(version: str):
    found = objects()
    kinds = {
        "Deployment",
        "PersistentVolumeClaim",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "CronJob",
    }
    assert set(found) == kinds
    for document in found.values():
        kubernetes_validate.validate(document, version, strict=True)


def test_a_wrong_field_is_caught():
    deployment = objects()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {"requests": {"cpu": "2"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_autoscaler_and_the_disruption_budget_hold_the_classifier_pods():
    found = objects()
    deployment, pods = found["Deployment"], found["Deployment"]["spec"]["template"]
    container = pods["spec"]["containers"][0]
    autoscaler = found["HorizontalPodAutoscaler"]["spec"]
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "kitchenware-classifier",
    }
    assert deployment["metadata"]["name"] == "kitchenware-classifier" and "replicas" not in deployment["spec"]
    assert autoscaler["metrics"][0]["resource"]["name"] == "cpu" and container["resources"]["requests"]["cpu"]
    assert 2 <= autoscaler["minReplicas"] < autoscaler["maxReplicas"]
    budget = found["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= pods["metadata"]["labels"].items()
    assert budget["minAvailable"] < autoscaler["minReplicas"]  # a drain can always move one pod


def test_feedback_is_stored_in_postgresql_by_a_url_from_a_secret_with_photos_on_a_shared_volume():
    found = objects()
    pods = found["Deployment"]["spec"]["template"]["spec"]
    environment = {variable["name"]: variable for variable in pods["containers"][0]["env"]}
    assert environment["KITCHENWARE_FEEDBACK_DB"]["valueFrom"]["secretKeyRef"] == {
        "name": "kitchenware-feedback",
        "key": "url",
    }
    assert environment["KITCHENWARE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "kitchenware-feedback"
    assert not [variable for variable in environment.values() if "sqlite" in variable.get("value", "")]
    assert "postgresql+psycopg://" in MANIFESTS.read_text()  # the URL's form, in the command making the Secret
    mount = pods["containers"][0]["volumeMounts"][0]
    assert mount["mountPath"] == environment["KITCHENWARE_FEEDBACK_PHOTOS"]["value"]
    claim = next(volume for volume in pods["volumes"] if volume["name"] == mount["name"])["persistentVolumeClaim"]
    assert claim["claimName"] == found["PersistentVolumeClaim"]["metadata"]["name"]
    assert found["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]  # every replica writes


def test_the_purge_cronjob_runs_the_image_s_command_daily_on_the_service_s_database_and_photos():
    """The CronJob runs `python -m kitchenware.feedback purge` (in the bento: tests/core/test_rooms.py) in the
    Deployment's image, with the same Secret and volume; the quota fits the volume."""
    found = objects()
    service = found["Deployment"]["spec"]["template"]["spec"]
    job = found["CronJob"]["spec"]
    pods = job["jobTemplate"]["spec"]["template"]["spec"]
    container = pods["containers"][0]
    assert job["schedule"].split()[2:] == ["*", "*", "*"] and len(job["schedule"].split()) == 5  # once a day
    assert job["concurrencyPolicy"] == "Forbid" and pods["restartPolicy"] in ("Never", "OnFailure")
    assert container["image"] == service["containers"][0]["image"]
    assert container["args"] == ["python", "-m", "kitchenware.feedback", "purge"] and "command" not in container
    assert container["workingDir"] == "/home/bentoml/bento/src"  # BentoML's $BENTO_PATH/src, where the bento's code is
    environment = {variable["name"]: variable for variable in container["env"]}
    served = {variable["name"]: variable for variable in service["containers"][0]["env"]}
    assert environment["KITCHENWARE_FEEDBACK_DB"] == served["KITCHENWARE_FEEDBACK_DB"]  # the same secretKeyRef
    assert float(environment["KITCHENWARE_FEEDBACK_KEEP_DAYS"]["value"]) > 0
    assert environment["KITCHENWARE_FEEDBACK_PHOTOS"] == served["KITCHENWARE_FEEDBACK_PHOTOS"]
    mount = container["volumeMounts"][0]
    assert mount["mountPath"] == environment["KITCHENWARE_FEEDBACK_PHOTOS"]["value"]
    claim = next(volume for volume in pods["volumes"] if volume["name"] == mount["name"])["persistentVolumeClaim"]
    assert claim["claimName"] == found["PersistentVolumeClaim"]["metadata"]["name"]
    assert pods["securityContext"]["fsGroup"] == service["securityContext"]["fsGroup"]  # may delete the files
    volume_gib = int(found["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"].removesuffix("Gi"))
    assert int(served["KITCHENWARE_FEEDBACK_MAX_MB"]["value"]) < volume_gib * 1024  # the quota fits the volume
