"""ShowerSet files (one HDF5 schema for every detector), splits, importers and exporters.

See :mod:`calogen.data.showerset` for the schema.
"""

from calogen.data.alice_npz import (
    export_alice_npz,
    import_alice_npz,
    read_alice_particles,
    read_alice_responses,
)
from calogen.data.calochallenge import export_calochallenge, import_calochallenge
from calogen.data.errors import ShowerSetError
from calogen.data.schema import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ZDC_CONDITION_COLUMNS,
    ZDC_CONDITION_UNITS,
)
from calogen.data.showerset import (
    ShowerBatch,
    ShowerSet,
    ShowerSetMeta,
    ShowerSetWriter,
    write_showerset,
)
from calogen.data.split import condition_groups, grouped_split

__all__ = [
    "export_alice_npz", "import_alice_npz", "read_alice_particles", "read_alice_responses",
    "export_calochallenge", "import_calochallenge",
    "ShowerSetError", "SCHEMA_NAME", "SCHEMA_VERSION",
    "ZDC_CONDITION_COLUMNS", "ZDC_CONDITION_UNITS", "ShowerBatch", "ShowerSet", "ShowerSetMeta",
    "ShowerSetWriter", "write_showerset", "condition_groups", "grouped_split",
]
