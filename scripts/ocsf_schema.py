#!/usr/bin/env python3
"""Writes the JSON schema the OCSF stream's findings are validated against.

`ocsf-json-schema` (PyPI, MIT) bundles the OCSF schema versions 1.0.0 to 1.8.0 and makes a JSON
Schema (draft 2020-12) of one class offline. We claim OCSF 1.1.0 (what AWS Security Lake custom
sources take), class Detection Finding (2004), with the `cloud` profile:

    python3 -m pip install ocsf-json-schema
    python3 scripts/ocsf_schema.py > crates/server/tests/fixtures/webhooks/ocsf-1.1.0-detection_finding.schema.json

`ocsf-lib` validates schema definitions, not events, and fetches them online: not used.
"""

import json
import sys

from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

VERSION = "1.1.0"
CLASS_UID = 2004

schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=VERSION))
name = schema.lookup_class_name_from_uid(class_uid=CLASS_UID)
json.dump(schema.get_class_schema(name, ["cloud"]), sys.stdout, indent=1)
sys.stdout.write("\n")
