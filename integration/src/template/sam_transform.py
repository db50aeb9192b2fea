# The SAM transform of a template, offline: what `sam validate` runs (the SAM CLI's
# SamTemplateValidator, which puts placeholder S3 locations in place of local CodeUri paths),
# printed as CloudFormation JSON on stdout. Run by the SAM venv's Python with the template's
# path as the only argument (integration/src/template/sam.rs).
import json
import sys

from samcli.lib.translate.sam_template_validator import SamTemplateValidator
from samcli.yamlhelper import yaml_parse


class NoManagedPolicyLookups:
    """SAM asks IAM for managed policy names only when a template names one by name (not by
    ARN); this template must not, as the transform runs offline."""

    def load(self):
        raise RuntimeError("the template names a managed policy by name: use its ARN")


with open(sys.argv[1], encoding="utf-8") as source:
    template = yaml_parse(source.read())
validator = SamTemplateValidator(template, NoManagedPolicyLookups(), region="us-east-1")
json.dump(yaml_parse(validator.get_translated_template_if_valid()), sys.stdout)
