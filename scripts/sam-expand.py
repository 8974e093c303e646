#!/usr/bin/env python3
"""sam-expand.py [TEMPLATE] [-o OUT]: the CloudFormation JSON that a SAM template expands to.

Run with the python of .venv-sam (aws-sam-cli brings aws-sam-translator); `make validate` writes
.aws-sam/expanded.json with it for internal/deploy/expanded_test.go. In order it:
  1. parses TEMPLATE (default template.yaml) with sam-cli's own loader, which reads the short
     intrinsic tags (!Ref, !Sub, !GetAtt, ...) into their long forms;
  2. puts placeholders where `sam package` would put uploaded artefacts: a function's local
     CodeUri becomes an S3 URI (as `sam validate` does), and an AWS::Serverless::Application's
     local Location becomes an S3 template URL (see LOCAL_TEMPLATE_URL);
  3. expands AWS::Serverless-2016-10-31 with samtranslator, offline: the region is fixed, no
     credentials are read, and IAM is never asked for managed policies (the fallback map is empty;
     a short name such as AmazonS3ReadOnlyAccess still resolves from the map bundled with
     samtranslator, and an unknown one is left as written, which the contract test then refuses);
  4. writes the expanded template as JSON to OUT, or stdout.
Any error (an unreadable template, an invalid SAM document) exits 1 with the translator's reasons.
"""

import argparse
import json
import sys

from boto3.session import Session
from samcli.yamlhelper import yaml_parse
from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

# The region only shapes ARNs the translator writes itself (partition aws); no call is made.
REGION = "us-east-1"
# What `sam package` uploads a function's code to; its value matters to nothing checked here.
CODE_URI = "s3://spotrunner-expand-placeholder/code.zip"
# samtranslator 1.115 does not refuse a local Location ("sam/image.yaml"): it copies it unchanged
# into the nested stack's TemplateURL, which CloudFormation would refuse. What CloudFormation
# receives is the S3 URL that `sam package` uploads the file to; the placeholder stands for that
# URL and keeps the local path in it. The nested template itself is not expanded here.
LOCAL_TEMPLATE_URL = "https://spotrunner-expand-placeholder.s3.amazonaws.com/{}"


def local(path):
    """A path on disk, as opposed to an s3:// or https:// location or an intrinsic function."""
    return isinstance(path, str) and "://" not in path


def add_placeholders(template):
    resources = template.get("Resources") or {}
    for resource in resources.values():
        if not isinstance(resource, dict):
            continue
        props = resource.setdefault("Properties", {}) or {}
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function" and props.get("PackageType", "Zip") == "Zip":
            if local(props.get("CodeUri", ".")) and "InlineCode" not in props:
                props["CodeUri"] = CODE_URI
        elif kind == "AWS::Serverless::Application" and local(props.get("Location")):
            props["Location"] = LOCAL_TEMPLATE_URL.format(props["Location"])
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    if local(function_globals.get("CodeUri")):
        function_globals["CodeUri"] = CODE_URI


def expand(template):
    translator = Translator(
        managed_policy_map=None,
        sam_parser=Parser(),
        plugins=[],
        boto_session=Session(region_name=REGION),
    )
    return translator.translate(
        sam_template=template,
        parameter_values={},
        get_managed_policy_map=lambda: {},
    )


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("template", nargs="?", default="template.yaml")
    args.add_argument("-o", "--output", help="write here instead of stdout")
    opts = args.parse_args()
    try:
        with open(opts.template, encoding="utf-8") as f:
            template = yaml_parse(f.read())
    except Exception as e:  # a YAML error, a missing file: both end the run the same way
        sys.exit(f"sam-expand: read {opts.template}: {e}")
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        sys.exit(f"sam-expand: {opts.template}: not a template with Resources")
    add_placeholders(template)
    try:
        expanded = expand(template)
    except InvalidDocumentException as e:
        reasons = "\n".join(f"  - {cause.message}" for cause in e.causes)
        sys.exit(f"sam-expand: {opts.template}: {e.message}\n{reasons}")
    except ExceptionWithMessage as e:
        sys.exit(f"sam-expand: {opts.template}: {e.message}")
    except Exception as e:  # the translator raises plain errors too (KeyError, TypeError, ...)
        sys.exit(f"sam-expand: {opts.template}: translator failed: {type(e).__name__}: {e}")
    out = json.dumps(expanded, indent=2, sort_keys=True) + "\n"
    if opts.output:
        with open(opts.output, "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)


if __name__ == "__main__":
    main()
