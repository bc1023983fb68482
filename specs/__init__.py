"""OpenAPI contracts served by Relais, and the JSON Schema of the ``relais import`` format.

The YAML documents mirror France Travail's partner API contracts; ``common.yaml`` holds the
components they share (referenced as ``common.yaml#/components/...``).
"""

from pathlib import Path

SPECS_DIR = Path(__file__).parent
