"""Names and numbers that define the ShowerSet file format (see ``shared/DESIGN.md``).

A ShowerSet is one HDF5 file holding ``N`` events of one of three shapes, told by the ``kind``
of its geometry attribute (``"image"`` when absent, as in every version-1 file):

=================  ==================  =======================================================
dataset            shape / dtype       meaning
=================  ==================  =======================================================
``showers``        (N, H, W)           ``image``: one value per cell; int32 photon counts when
                                       simulated, float32 allowed for generated showers
``showers``        (N, n_voxels)       ``voxels``: energy per voxel (MeV), float32 or integer;
                                       ``n_voxels`` is the geometry's binning
``points``         (P, 4) float32      ``points``: every point ``(x, y, z, E)`` (mm, mm, mm,
                                       MeV) of every shower, one shower after the other;
                                       attributes ``columns`` and ``units``; never padded
``offsets``        (N + 1,) int64      ``points``: shower ``i`` is ``points[offsets[i]:
                                       offsets[i + 1]]`` (``offsets[0] = 0``, non-decreasing,
                                       ``offsets[-1] = P``)
``conditions``     (N, k) float32      particle conditions; attributes ``columns`` and ``units``
``pdg``            (N,) int32          PDG Monte Carlo code of the incoming particle
``condition_id``   (N,) int64          group id: repeated responses of one particle share an id
=================  ==================  =======================================================

A points file has no ``showers`` dataset; image and voxel files have no ``points`` and
``offsets``. Root attributes: ``schema``, ``schema_version``, ``detector``, ``geometry`` (JSON,
the geometry's ``to_dict()``), ``shower_units`` (unit of a shower value; of ``E`` for points),
``producer`` (JSON), ``created`` (ISO-8601, UTC), ``n_events``.

Version 2 added voxels and points; a version-1 file is an image file with the same layout.
"""

from __future__ import annotations

from calogen.particles import CONDITION_COLUMNS, CONDITION_UNITS

SCHEMA_NAME = "calogen.showerset"
"""Value of the root attribute ``schema`` of every ShowerSet file."""

SCHEMA_VERSION = 2
"""Version written by this library."""

SUPPORTED_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
"""Versions this library can read."""

ZDC_CONDITION_COLUMNS: tuple[str, ...] = CONDITION_COLUMNS
"""ZDC particle conditions in ALICE O2 order (``Detectors/ZDC/fastsimulation``)."""

ZDC_CONDITION_UNITS: tuple[str, ...] = CONDITION_UNITS
"""Units of :data:`ZDC_CONDITION_COLUMNS`, as in ALICE O2 (energy and momenta in GeV,
vertex in m, mass in MeV, charge in units of e)."""

# Dataset names.
SHOWERS = "showers"
CONDITIONS = "conditions"
PDG = "pdg"
CONDITION_ID = "condition_id"
POINTS = "points"
OFFSETS = "offsets"
DATASETS: tuple[str, ...] = (SHOWERS, CONDITIONS, PDG, CONDITION_ID)
"""Datasets of an image or voxel file, in :class:`~calogen.data.showerset.ShowerBatch` order."""
EVENT_DATASETS: tuple[str, ...] = (CONDITIONS, PDG, CONDITION_ID)
"""Datasets with one row per event in every kind of file."""

# Attribute names.
ATTR_SCHEMA = "schema"
ATTR_SCHEMA_VERSION = "schema_version"
ATTR_DETECTOR = "detector"
ATTR_GEOMETRY = "geometry"
ATTR_SHOWER_UNITS = "shower_units"
ATTR_PRODUCER = "producer"
ATTR_CREATED = "created"
ATTR_N_EVENTS = "n_events"
ATTR_COLUMNS = "columns"
ATTR_UNITS = "units"
ROOT_ATTRIBUTES: tuple[str, ...] = (
    ATTR_SCHEMA, ATTR_SCHEMA_VERSION, ATTR_DETECTOR, ATTR_GEOMETRY, ATTR_SHOWER_UNITS,
    ATTR_PRODUCER, ATTR_CREATED, ATTR_N_EVENTS,
)

WRITE_CACHE_BYTES = 64 * 1024 * 1024
"""HDF5 chunk cache of the writer per dataset, bytes. It must hold a whole chunk: with HDF5's
default 1 MiB cache a 2 MiB chunk filled by small appends is compressed and rewritten at every
append (measured on ZN events appended ~85 at a time: 0.11 ms per event with 1 MiB, 0.01 ms
with this cache)."""

MAX_CHUNK_EVENTS = 1024
"""Upper bound on events per HDF5 chunk (the unit of compression and of I/O along N)."""

CHUNK_TARGET_BYTES = 2 * 1024 * 1024
"""Uncompressed size aimed at for one chunk of showers, bytes.

Reading one event decompresses its whole chunk, so random access (``ShowerSet.take``) costs
about one chunk per touched event. Measured on 50 000 ZN int32 44 x 44 events (12 % pixels
non-zero): 64 random events took 0.52 s with 1024-event chunks (7.9 MB each) and 0.19 s with
256-event chunks (2 MB), while file size (15.2 vs 15.3 MB) and streaming time (0.86 vs 0.63 s)
were unchanged. A fixed count of events would make voxel geometries' chunks huge
(CaloChallenge dataset 3: 40 500 voxels, 1024 events = 166 MB), hence a byte target.
"""


def default_chunk_events(shower_shape: tuple[int, ...], itemsize: int) -> int:
    """Events per chunk: the largest power of two whose showers fit :data:`CHUNK_TARGET_BYTES`,
    clamped to ``[1, MAX_CHUNK_EVENTS]`` (256 for ZN int32 44 x 44 images)."""
    row_bytes = max(1, itemsize)
    for dim in shower_shape:
        row_bytes *= max(1, int(dim))
    events = 1
    while events * 2 <= MAX_CHUNK_EVENTS and events * 2 * row_bytes <= CHUNK_TARGET_BYTES:
        events *= 2
    return events


def default_chunk_points() -> int:
    """Points per chunk of a ``points`` dataset: :data:`CHUNK_TARGET_BYTES` of float32
    ``(x, y, z, E)`` (131 072 points)."""
    return CHUNK_TARGET_BYTES // (4 * 4)


COMPRESSION: dict[str, object] = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
"""HDF5 filters for every dataset: byte shuffle + gzip (deflate) level 1.

Chosen by measurement on 8192 sparse int32 44 x 44 ZN-like images in chunks of 1024 events
(h5py 3.16, one CPU core; read = streaming in batches of 4096):

================  ====================  ====================  ==========================
filter            4 % pixels non-zero   37 % pixels non-zero  notes
================  ====================  ====================  ==========================
none              63.4 MB, r 22 ms      63.4 MB, r 23 ms
gzip 1            1.42 MB, r 66 ms      7.98 MB, r 166 ms
gzip 1 + shuffle  1.05 MB, r 81 ms      5.33 MB, r 125 ms     chosen
lzf               2.23 MB, r 153 ms     13.1 MB, r 205 ms
lzf + shuffle     1.69 MB, r 177 ms     7.13 MB, r 208 ms
================  ====================  ====================  ==========================

gzip reads faster than lzf here (lzf is h5py's own filter and decodes slower) and files are
smaller; writes take about the same time (0.2-0.5 s for 63 MB). gzip is also a standard HDF5
filter that the C/C++ HDF5 library (ALICE O2, ROOT) can read without the h5py-only lzf plugin.
"""

READ_CACHE_BYTES = 64 * 1024 * 1024
"""HDF5 chunk cache per open file, bytes (holds a few whole chunks for random access)."""
