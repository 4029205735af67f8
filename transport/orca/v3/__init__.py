"""ORCA's protos, as cncf/xds publishes them under ``xds/data/orca/v3`` (the load report) and
``xds/service/orca/v3`` (the out-of-band service), and protoc's modules for them (see
scripts/generate_protos.py), in ``transport.descriptors.POOL``."""
