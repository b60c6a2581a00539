"""The graph: the operator's file as typed values (`model`), read and checked by `load` against the JSON
Schema in `schemas/`. Pure: no I/O beyond reading the file it is given."""
