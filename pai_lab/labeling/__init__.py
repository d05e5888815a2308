"""The labeling service (iTAG): templates, tasks, packages and their flow, durable answers,
statistics, pre-labels, and the export/import formats in :mod:`pai_lab.labeling.formats`."""
