"""Prints template.yaml as the SAM transform expands it, as JSON, without AWS.

Usage: $EDGECERT_SAM_VENV/bin/python integration/scripts/sam-transform.py TEMPLATE [NAME=VALUE ...]

The parameter values given are what the transform sees (most of the template's intrinsics stay
unresolved either way); the output is the CloudFormation template that would be deployed. The
template names no managed policy by its short name, so the IAM lookup SAM does for those is
answered with an empty map instead of a network call: a short name would then fail here.
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


# Where `sam package` would have uploaded the built code.
PACKAGED_CODE = "s3://edgecert-sam-package/bootstrap.zip"


class NoManagedPolicies:
    """Stands in for SAM's IAM-backed managed policy loader."""

    def load(self):
        return {}


def stand_in_for_packaged_code(template):
    """Points local CodeUri values at S3, as `sam package` would (the transform wants S3)."""
    function_globals = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = PACKAGED_CODE
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in properties:
            properties["CodeUri"] = PACKAGED_CODE


def main(argv):
    # The region only names the partition of generated ARNs; nothing is called.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    with open(argv[1], encoding="utf-8") as file:
        template = yaml_parse(file.read())
    parameters = dict(pair.split("=", 1) for pair in argv[2:])
    stand_in_for_packaged_code(template)
    transformed = transform(template, parameters, NoManagedPolicies())
    json.dump(transformed, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
